"""`jobbridge status` over a DATA_DIR nothing has made yet: reported as such, with what
makes it, and left unmade (a mistyped one must not appear)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.ops.probes import check_broker
from bridge.ops.status import collect_status


def test_the_embedded_broker_names_a_data_dir_that_does_not_exist(
    configure: Callable[..., Any], tmp_path: Path
) -> None:
    fresh = tmp_path / "not-made-yet"
    settings = configure(DATA_DIR=str(fresh), REDIS_URL=None, BROKER_URL=None, DATABASE_URL=None)

    check = check_broker(settings, timeout=1.0)

    assert check.ok is False
    assert f"DATA_DIR {fresh} does not exist" in check.detail
    assert "jobbridge dev" in check.detail


def test_status_makes_nothing_in_a_data_dir_that_does_not_exist(
    configure: Callable[..., Any], tmp_path: Path
) -> None:
    fresh = tmp_path / "not-made-yet"
    settings = configure(DATA_DIR=str(fresh), REDIS_URL=None, BROKER_URL=None, DATABASE_URL=None)

    collect_status(settings, timeout=1.0, worker_timeout=0.5)

    assert not fresh.exists()
