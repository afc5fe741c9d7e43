"""The emulator imports nothing from the bridge: it is an independent check of what the bridge sends.

Were it to reuse the bridge's payload, auth or validation code, a bug there would be on both sides
of every emulator test and no test would see it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import streams.dev.emulator

PACKAGE = "streams.dev.emulator"
PACKAGE_DIR = Path(streams.dev.emulator.__file__).resolve().parent
# the parents Python imports on the way to the package: namespaces, no code of the bridge
PARENTS = {"streams", "streams.dev"}


def _module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(path: Path) -> list[str]:
    """Every module an import statement of ``path`` names, also inside functions and TYPE_CHECKING blocks."""
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


def _is_bridge(name: str) -> bool:
    inside = name == PACKAGE or name.startswith(PACKAGE + ".")
    return (name == "streams" or name.startswith("streams.")) and not inside


def test_the_walk_sees_the_emulators_own_imports() -> None:
    """The check below looks at real import statements (an empty walk would pass it vacuously)."""
    modules = sorted(PACKAGE_DIR.rglob("*.py"))
    assert {p.stem for p in modules} >= {"zeotap", "audiohook", "activation", "registry", "faults", "server", "client"}
    names = {name for path in modules for name in _imported_names(path)}
    assert "streams.dev.emulator.config" in names
    assert "aiohttp" in names
    assert _is_bridge("streams.pipeline.identity") and _is_bridge("streams") and not _is_bridge(PACKAGE + ".state")


def test_emulator_source_imports_nothing_from_the_bridge() -> None:
    offenders = {
        str(path.relative_to(PACKAGE_DIR)): sorted(n for n in _imported_names(path) if _is_bridge(n))
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_the_emulator_loads_no_bridge_module() -> None:
    """At run time too, in a fresh interpreter: only the (empty) parent packages come along."""
    code = f"import sys, {PACKAGE}, {PACKAGE}.__main__; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    bridge = [m for m in loaded if _is_bridge(m) and m not in PARENTS]
    assert bridge == []
    assert f"{PACKAGE}.zeotap" in loaded
