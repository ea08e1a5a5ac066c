"""What every command shares: ``python -m acs.cli``, the exit status documented in --help,
--json on every listing and show, the API's bounds, and no database created by a command
that only uses one."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from acs.cli import build_parser
from acs.cli.common import MAX_OFFSET


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:  # an alias (device for devices)
                    continue
                seen.add(id(sub))
                found += _leaves(sub, (*path, name))
    return found or [(path, parser)]


def test_python_m_acs_cli_and_its_exit_status():
    run = subprocess.run(
        [sys.executable, "-m", "acs.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0
    assert (
        "exit status:\n"
        "  0  done\n"
        "  1  refused: not found, a conflict (e.g. cancelling a finished task), invalid input\n"
        "  2  a database acs cannot reach, open or use; bad settings or usage\n"
        "  3  tasks queue --wait: not every task finished in time\n"
    ) in run.stdout
    queue = dict(_leaves(build_parser()))[("tasks", "queue")].format_help()
    assert "exit status with --wait: 0 every task done; 1 a task ended fault" in queue


def test_every_listing_and_show_prints_json():
    leaves = dict(_leaves(build_parser()))
    readers = [path for path in leaves if path[-1] in ("list", "show")]
    assert len(readers) == 14
    for path in readers:
        options = {o for a in leaves[path]._actions for o in a.option_strings}
        assert "--json" in options, path
    assert "--json" in {o for a in leaves[("db", "status")]._actions for o in a.option_strings}


def test_listings_are_bounded_as_the_api_bounds_them():
    from acs.web.api import deps

    assert MAX_OFFSET == deps.MAX_OFFSET


@pytest.mark.parametrize(
    "argv",
    [
        ("devices", "list"),
        ("devices", "show", "X"),
        ("tasks", "list"),
        ("tasks", "queue", "X", "Reboot"),
        ("files", "list"),
        ("phones", "list"),
        ("phones", "render", "001565113af8"),
        ("profiles", "list"),
        ("rollouts", "list"),
        ("token", "list"),
        ("db", "status"),
        ("db", "backup", "copy.db"),
    ],
    ids=" ".join,
)
def test_no_command_but_upgrade_creates_a_database(acs, tmp_path, monkeypatch, argv):
    monkeypatch.delenv("ACS_DATABASE_URL")
    here = tmp_path / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    db = here / "data" / "acs.db"
    assert acs(*argv, "--data-dir", str(here / "data")) == (
        2,
        "",
        f"no database at {db}: run acs in the directory `acs serve` runs in, or give it the "
        "same --data-dir (ACS_DATA_DIR) or ACS_DATABASE_URL; `acs db upgrade` creates a new "
        f"database (database sqlite+aiosqlite:///{db}, data dir {here}/data)\n",
    )
    assert list(here.iterdir()) == []


def test_no_command_inherits_a_metrics_directory():
    """``acs.cli.common`` drops PROMETHEUS_MULTIPROC_DIR before any service is imported (a
    service may import prometheus_client, which reads it once, at import)."""
    code = (
        "import os, sys\n"
        "os.environ['PROMETHEUS_MULTIPROC_DIR'] = '/nonexistent'\n"
        "import acs.cli\n"
        "loaded = [m for m in sys.modules if m.startswith('acs.')]\n"
        "services = [i for i, m in enumerate(loaded) if m.startswith(('acs.services', 'acs.db'))]\n"
        "print(loaded.index('acs.cli.common') < min(services), "
        "'PROMETHEUS_MULTIPROC_DIR' in os.environ)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout == "True False\n"
