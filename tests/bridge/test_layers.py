"""The code's shape: two layers, one direction, no cycles, declaring without side effects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

from tests.support import ROOT

PACKAGES = ("tasks", "bridge", "config")
LONGEST_MODULE = 400


def test_no_module_imports_one_that_imports_it_back() -> None:
    # grimp reads every import, those inside functions included.
    graph = grimp.build_graph(*PACKAGES)
    cycles = sorted(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.find_shortest_chain(importer=imported, imported=module)
    )
    assert cycles == []


def test_the_import_contracts_hold() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_the_app_reads_no_environment() -> None:
    # A broken environment only matters where a process starts; importing the app and
    # building its Celery app (without finalizing it) must not read it.
    code = "import tasks, bridge.cli, bridge.web; print(len(tasks.JOBS))"
    env = {"PATH": "/usr/bin:/bin", "JOB_PROVIDER": "nonsense", "INNGEST_SIGNING_KEY": "zz"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 0


def test_no_module_is_longer_than_the_limit() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
        and (lines := len(path.read_text(encoding="utf-8").splitlines())) > LONGEST_MODULE
    }
    assert long == {}
