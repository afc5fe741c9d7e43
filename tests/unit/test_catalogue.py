"""The catalogue of outcomes (`streams.pipeline.outcome`) is the one list of stages and reasons.

Checked against it: (a) docs/metrics.md, both ways; (b) the `stage`/`reason` values the dashboard
and the alert rules use; (c) the code: every Rejected/Filtered/Failed/DeadLetter built in `streams/`
takes its stage and reason from the catalogue and its error class from a real class, never from a
string literal; (d) the dead-letter headers. Each checker is also shown to catch a broken input.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest

from streams import errors
from streams.deadletter import H_CLASS, H_EXC_CLASS, H_REASON, H_STAGE, DeadLetter, dead_letter_message, header_dict
from streams.pipeline.outcome import DEAD_LETTERS, DELIVER, DRY_RUN_REJECTIONS, FILTERS, STAGES
from tests.deploy.test_observability import DASHBOARD, RULES, dashboard, dashboard_queries, parse, rules_doc

ROOT = Path(__file__).resolve().parents[2]
STREAMS = ROOT / "streams"
METRICS_DOC = ROOT / "docs" / "metrics.md"

LABEL_PAIRS = set(DEAD_LETTERS) | set(FILTERS)
REASONS = {reason for _, reason in LABEL_PAIRS}
ALL_PAIRS = LABEL_PAIRS | set(DRY_RUN_REJECTIONS)


def _record_error_classes() -> dict[str, type[errors.RecordError]]:
    """Every RecordError subclass defined in `streams/` (found in the source, then imported)."""
    defined: dict[str, tuple[str, list[str]]] = {}  # class -> (module, base names)
    for path in STREAMS.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "" for b in node.bases]
                defined[node.name] = (module, bases)
    out = {"RecordError": errors.RecordError}
    while True:
        new = {name for name, (_, bases) in defined.items() if name not in out and set(bases) & set(out)}
        if not new:
            return out
        for name in new:
            out[name] = getattr(importlib.import_module(defined[name][0]), name)


ERROR_CLASSES = {name for name, obj in vars(errors).items() if inspect.isclass(obj) and issubclass(obj, Exception)}
RECORD_ERRORS = _record_error_classes()


# --------------------------------------------------------------------------- (a) docs/metrics.md


def documented(text: str) -> dict[str, set[Any]]:
    """The tables of the doc's "Stages and reasons" section by their heading's first word:
    {"Stages": {stage}, "Dead": {(stage, reason)}, "Filtered": {(stage, reason)}}."""
    _, found, rest = text.partition("\n## Stages and reasons\n")
    assert found, "docs/metrics.md has no '## Stages and reasons' section"
    section = rest.split("\n## ", 1)[0]
    out: dict[str, set[Any]] = {}
    for sub in section.split("\n### ")[1:]:
        title, _, body = sub.partition("\n")
        rows = set()
        for line in body.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not line.startswith("| `"):
                continue
            values = tuple(c.strip("`") for c in cells if re.fullmatch(r"`[a-z_]+`", c))
            rows.add(values[0] if title.startswith("Stages") else values[:2])
        out[title.split()[0]] = rows
    return out


def doc_problems(text: str) -> list[str]:
    doc = documented(text)
    problems = []
    for what, have, want in (
        ("stages", doc.get("Stages", set()), set(STAGES)),
        ("dead letters", doc.get("Dead", set()), set(DEAD_LETTERS)),
        ("filtered", doc.get("Filtered", set()), set(FILTERS)),
    ):
        problems += [f"{what}: {v!r} is not documented" for v in sorted(want - have)]
        problems += [f"{what}: {v!r} is documented but not in the catalogue" for v in sorted(have - want)]
    return problems


def test_metrics_doc_lists_exactly_the_catalogue() -> None:
    assert doc_problems(METRICS_DOC.read_text(encoding="utf-8")) == []


def test_doc_check_catches_a_missing_and_an_extra_reason() -> None:
    text = METRICS_DOC.read_text(encoding="utf-8")
    missing = text.replace("| `decode` | `too_many_items` |", "| decode | too_many_items |")
    assert doc_problems(missing) == ["dead letters: ('decode', 'too_many_items') is not documented"]
    row = "| `route` | `route_not_forwarded` |"
    extra = text.replace(row, "| `route` | `no_route` | x |\n" + row, 1)
    assert doc_problems(extra) == ["filtered: ('route', 'no_route') is documented but not in the catalogue"]
    stage = text.replace("| `internal` | a bug", "| `internals` | a bug")
    assert sorted(doc_problems(stage)) == [
        "stages: 'internal' is not documented",
        "stages: 'internals' is documented but not in the catalogue",
    ]


# --------------------------------------------------------------------------- (b) dashboard and rules

ALLOWED = {"stage": set(STAGES), "reason": REASONS}
# stage=... / reason=... in prose (descriptions, runbooks) and in expressions as written in the files
PROSE = re.compile(r'\b(stage|reason)\s*(?:=~|!~|!=|=)\s*\\?"?([a-z_|]+)')


def label_problems(expr: str) -> list[str]:
    """`stage`/`reason` matcher values of a PromQL expression that are not in the catalogue."""
    problems: list[str] = []

    def visit(node: Any) -> None:
        if not isinstance(node, promql_parser.VectorSelector):
            return
        matchers = list(node.matchers.matchers) + [m for group in node.matchers.or_matchers for m in group]
        for m in matchers:
            if m.name not in ALLOWED:
                continue
            regex = m.op in (promql_parser.MatchOp.Re, promql_parser.MatchOp.NotRe)
            values = m.value.split("|") if regex else [m.value]
            for v in values:
                if regex and not re.fullmatch(r"[a-z_]+", v):
                    problems.append(f"{m.name}=~{m.value!r}: only alternatives of plain values can be checked")
                elif v not in ALLOWED[m.name]:
                    problems.append(f"{m.name} {v!r} is not in the catalogue")

    promql_parser.walk(parse(expr), pre_visit=visit)
    return problems


def prose_problems(text: str) -> list[str]:
    return [
        f"{name}={value!r} is not in the catalogue"
        for name, values in PROSE.findall(text)
        for value in values.split("|")
        if value not in ALLOWED[name]
    ]


def _rule_exprs() -> list[str]:
    return [str(r["expr"]) for g in rules_doc()["spec"]["groups"] for r in g["rules"]]


def test_dashboard_and_rules_use_only_catalogue_stages_and_reasons() -> None:
    exprs = [expr for _, expr, _ in dashboard_queries(dashboard())] + _rule_exprs()
    assert len(exprs) > 10  # the files were read
    assert [p for e in exprs for p in label_problems(e)] == []
    for path in (DASHBOARD, RULES):
        assert prose_problems(path.read_text(encoding="utf-8")) == [], path


def test_label_check_catches_values_outside_the_catalogue() -> None:
    assert label_problems('sum(rate(s2s_records_dead_lettered_total{stage="deliver", reason="bad_request"}[5m]))') == []
    assert label_problems('rate(s2s_records_dead_lettered_total{stage="decoding"}[5m])') == [
        "stage 'decoding' is not in the catalogue"
    ]
    assert label_problems('rate(s2s_records_filtered_total{reason=~"consent_denied|opted_out"}[5m])') == [
        "reason 'opted_out' is not in the catalogue"
    ]
    assert label_problems('rate(s2s_records_filtered_total{reason!~"consent.*"}[5m])') != []
    assert prose_problems('"description": "stage=deliver: refused", "x": "reason=\\"bad_requests\\""') == [
        "reason='bad_requests' is not in the catalogue"
    ]


# --------------------------------------------------------------------------- (c) the code

# call -> positions of (stage, reason, error_class) arguments (None: the call has no such argument)
BUILDERS: dict[str, tuple[int | None, int | None, int | None]] = {
    "Rejected": (0, 1, 3),
    "Filtered": (0, 1, None),
    "Failed": (None, 0, None),
    "DeadLetter": (6, 7, 8),
    "_fail": (None, 1, None),  # Sink._fail(item, reason, ...) builds the Failed
}
KEYWORDS = ("stage", "reason", "error_class")


def _is_literal(node: ast.expr) -> bool:
    return any(isinstance(n, ast.JoinedStr) or (isinstance(n, ast.Constant) and isinstance(n.value, str)) for n in ast.walk(node))


def _literals(node: ast.expr) -> Iterator[str]:
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            yield n.value


def _value_problem(what: str, node: ast.expr) -> str | None:
    """Why this stage/reason/error_class argument is not taken from the catalogue or a real class."""
    if what == "error_class" and isinstance(node, ast.Attribute) and node.attr == "__name__":
        if isinstance(node.value, ast.Name) and node.value.id not in ERROR_CLASSES | set(RECORD_ERRORS):
            return f"error class {node.value.id}.__name__ is not a class of streams.errors nor a RecordError"
        return None
    if not _is_literal(node):
        return None
    return f"{what} is a string literal {list(_literals(node))}: use the catalogue (streams.pipeline.outcome) / a real class"


def code_problems(source: str) -> list[str]:
    problems: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name not in BUILDERS:
                continue
            args: dict[str, ast.expr] = {}
            for what, pos in zip(KEYWORDS, BUILDERS[name], strict=True):
                if pos is not None and pos < len(node.args):
                    args[what] = node.args[pos]
            args.update({k.arg: k.value for k in node.keywords if k.arg in KEYWORDS})
            for what, arg in args.items():
                why = _value_problem(what, arg)
                if why:
                    problems.append(f"line {node.lineno}: {name}(): {why}")
        elif isinstance(node, ast.Compare):
            # `x.stage == "deliver"`: a catalogue value spelt out again
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr in ("stage", "reason") for s in sides):
                for s in sides:
                    if isinstance(s, ast.Constant) and isinstance(s.value, str):
                        problems.append(f"line {node.lineno}: compares a stage/reason with the literal {s.value!r}")
    return problems


def _sources() -> Iterator[tuple[str, str]]:
    for path in sorted(STREAMS.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if not rel.startswith("streams/dev/"):
            yield rel, path.read_text(encoding="utf-8")


def test_outcomes_are_built_from_the_catalogue_and_real_classes() -> None:
    found = {rel: code_problems(src) for rel, src in _sources()}
    assert {rel: p for rel, p in found.items() if p} == {}
    # the scan sees the builders: transform builds rejections and filters, the sink its failures
    sources = dict(_sources())
    assert "Rejected(" in sources["streams/pipeline/transform.py"] and "Filtered(" in sources["streams/pipeline/transform.py"]


def test_code_check_catches_literals_and_invented_classes() -> None:
    good = "Rejected(DECODE, exc.reason, str(exc), exc.error_class)\nFiltered(CONSENT, CONSENT_DENIED, why, event_id)"
    assert code_problems(good) == []
    assert len(code_problems('Rejected("enrich", MISSING_COUNTRY, "no country", "MissingCountry", event_id)')) == 2
    assert code_problems("Rejected(ENRICH, MISSING_COUNTRY, d, NoCountryAtAll.__name__)") == [
        "line 1: Rejected(): error class NoCountryAtAll.__name__ is not a class of streams.errors nor a RecordError"
    ]
    assert len(code_problems('Failed("server_error", 500, "", 1, 0.0, 0.0)')) == 1
    assert len(code_problems('self._fail(items[0], "too_large", status, reason, now)')) == 1
    assert len(code_problems('DeadLetter(route="r", stage="decode", reason=r, error_class=c)')) == 1
    assert len(code_problems('x = b"a" if self.stage != "deliver" else b"b"')) == 1
    assert len(code_problems('Rejected("internal", "unexpected_error", d, type(exc).__name__)')) == 2


def test_every_record_error_is_dead_lettered_with_a_catalogue_pair() -> None:
    # errors whose stage and reason are fixed by their class carry a pair of the catalogue
    fixed = {name: cls for name, cls in RECORD_ERRORS.items() if hasattr(cls, "stage") and hasattr(cls, "reason")}
    assert {"DecodeError", "TooManyItems", "UnknownSchemaId", "MappingError"} <= set(fixed)
    assert {name: (cls.stage, cls.reason) for name, cls in fixed.items() if (cls.stage, cls.reason) not in DEAD_LETTERS} == {}
    # the rest take theirs when raised, and must be given them
    with pytest.raises(TypeError):
        errors.MissingRequiredField("Audiohook requires ip_address")
    err = errors.MissingRequiredField("Audiohook requires ip_address", stage="encode", reason="missing_required_field")
    assert (err.stage, err.reason, err.error_class, err.detail) == (
        "encode",
        "missing_required_field",
        "MissingRequiredField",
        "Audiohook requires ip_address",
    )


def test_the_tree_has_its_four_branches() -> None:
    for branch in (errors.RecordError, errors.TransientError, errors.FatalError, errors.ConfigError):
        assert issubclass(branch, errors.BridgeError)
    assert errors.FatalError.exit_code == 3


# --------------------------------------------------------------------------- (d) dead-letter headers


def _dead_letter(stage: str, reason: str) -> DeadLetter:
    return DeadLetter(
        route="r",
        destination="zeotap",
        topic="src",
        partition=0,
        offset=7,
        timestamp_ms=None,
        stage=stage,
        reason=reason,
        error_class="RecordError",
        message="detail",
        http_status=400 if stage == DELIVER else None,
    )


def header_problems(headers: Any) -> list[str]:
    h = header_dict(headers)
    pair = (h.get(H_STAGE), h.get(H_REASON))
    problems = [] if pair in DEAD_LETTERS else [f"headers say {pair}, not a dead-letter pair of the catalogue"]
    want_class = "streams.delivery" if pair[0] == DELIVER else "streams.pipeline"
    if h.get(H_CLASS) != want_class:
        problems.append(f"{H_CLASS} is {h.get(H_CLASS)!r} for stage {pair[0]!r}")
    if not h.get(H_EXC_CLASS):
        problems.append(f"no {H_EXC_CLASS}")
    return problems


@pytest.mark.parametrize(("stage", "reason"), sorted(DEAD_LETTERS))
def test_every_dead_letter_reason_reaches_the_headers(stage: str, reason: str) -> None:
    dl = _dead_letter(stage, reason)
    original = [("origin", b"shop"), (H_REASON, b"forged"), (H_STAGE, b"forged")]  # a record's own look-alikes
    assert header_problems(dl.headers(original)) == []
    # also when the record is too large to be dead-lettered as it is, and in the minimal form
    reduced = dead_letter_message(dl, b"k", b"v" * 50_000, original, limit=10_000)
    assert reduced.reduced and header_problems(reduced.headers) == []
    minimal = dead_letter_message(dl, b"k", b"v", original, limit=10_000, refused="too large", attempt=2)
    assert header_problems(minimal.headers) == []


def test_header_check_catches_values_outside_the_catalogue() -> None:
    assert header_problems(_dead_letter("decode", "undecodabl").headers([])) == [
        "headers say ('decode', 'undecodabl'), not a dead-letter pair of the catalogue"
    ]
    assert header_problems(_dead_letter("decode", "consent_denied").headers([])) != []  # a filter reason
    assert header_problems([(H_STAGE, b"deliver"), (H_REASON, b"bad_request"), (H_CLASS, b"streams.pipeline")]) == [
        f"{H_CLASS} is 'streams.pipeline' for stage 'deliver'",
        f"no {H_EXC_CLASS}",
    ]


def test_catalogue_pairs_use_catalogue_stages() -> None:
    assert {stage for stage, _ in ALL_PAIRS} <= set(STAGES)
    assert set(STAGES) == {stage for stage, _ in LABEL_PAIRS}  # no stage without an outcome
