"""How a process that imports the app on its own (`celery -A tasks ...`, `uvicorn
bridge.web:app`) ends on a bad environment: a bad environment is the operator's to fix,
not a bug, so it ends with the lines naming each variable and its fix on stderr and exit
status 2, without a traceback (JOBBRIDGE_DEBUG=1 raises the error instead)."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from config.settings import ConfigError, Settings, get_settings
from config.switches import FALSY


def debug_requested() -> bool:
    """JOBBRIDGE_DEBUG=1 (or `jobbridge --debug`): show tracebacks instead of plain lines."""
    return os.environ.get("JOBBRIDGE_DEBUG", "").strip().lower() not in FALSY


def exit_plainly(error: ConfigError) -> NoReturn:
    """The end of the process with `error`'s plain lines and exit status 2."""
    if debug_requested():
        raise error
    print(error, file=sys.stderr, flush=True)
    raise SystemExit(2) from None


def get_settings_or_exit() -> Settings:
    """The process-wide settings, or the end of the process with the plain message."""
    try:
        return get_settings()
    except ConfigError as error:
        exit_plainly(error)


def unusable_folder(variable: str, error: OSError, purpose: str) -> ConfigError:
    """A folder a variable names (or implies) that cannot be made or written."""
    where = error.filename or "it"
    return ConfigError(
        f"invalid configuration:\n  {variable}: cannot use {where} for {purpose}: "
        f"{error.strerror or error}; point {variable} at a folder this user may write"
    )
