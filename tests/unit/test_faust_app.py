"""The Faust engine's app as the worker builds it (no broker needed to build it)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from streams.app import Bridge, build_app
from streams.config import load_config
from tests.integration.harness import EXAMPLE


def test_faust_keeps_its_data_directory_under_the_temp_dir_not_the_working_directory() -> None:
    """The shipped image runs with a read-only root filesystem and /tmp as an emptyDir: a data
    directory in the working directory (Faust's default, `<group>-data`) cannot be created there."""
    config = load_config(EXAMPLE, env={"ZEOTAP_WRITE_KEY": "k"})
    app = build_app(config, Bridge(config), web_port=0)
    datadir = Path(app.conf.datadir).resolve()
    assert datadir.is_relative_to(Path(tempfile.gettempdir()).resolve())
    assert not datadir.is_relative_to(Path.cwd().resolve())


def test_a_group_id_with_a_slash_still_gives_one_directory_level() -> None:
    config = load_config(EXAMPLE, env={"ZEOTAP_WRITE_KEY": "k"})
    config = config.model_copy(update={"kafka": config.kafka.model_copy(update={"group_id": "team/s2s bridge"})})
    app = build_app(config, Bridge(config), web_port=0)
    datadir = Path(app.conf.datadir)
    assert datadir.parent == Path(tempfile.gettempdir())
    assert datadir.name == "s2s-bridge-faust-team_s2s_bridge"
