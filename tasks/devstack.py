"""What `jobbridge dev` does for the inbox app before the stack starts: migrate the
database, seed the demo account, and say how to try it."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from config import Settings
from tasks.demo import ensure_demo_account
from tasks.schema import upgrade


def prepare_dev(settings: Settings) -> list[str]:
    upgrade(settings.sqlalchemy_url)
    _, keys = ensure_demo_account(settings.data_dir)
    maildir = settings.data_dir.resolve() / "maildir" / "demo"
    message = keys[0] if keys else "<message id>"
    jobbridge = _data_dir_given(settings) + _this_command()
    carried = [name for name in _ALSO_CARRIED if name in os.environ]
    also = f" (with the same {', '.join(carried)} set)" if carried else ""
    return [
        f"Try it{also}: archive a demo message 2 seconds from now, then watch it move.",
        f"  {jobbridge} actions schedule --account demo@localhost --type ARCHIVE \\",
        f"      --message {message} --in 2s",
        f"  ls {maildir}/.Archive/cur",
        "Run the demo rules over the whole inbox, then watch the counts:",
        f"  {jobbridge} bulk start --account demo@localhost --include-read",
        f"  {jobbridge} bulk show <jobId it prints>",
    ]


# Given in the environment, they must be given again to a command typed in another
# terminal; only DATA_DIR is printed (the others may hold passwords).
_ALSO_CARRIED = ("DATABASE_URL", "BROKER_URL", "REDIS_URL", "REDIS_KEY_PREFIX")


def _data_dir_given(settings: Settings) -> str:
    """`DATA_DIR=<its absolute path> `, given or the default: the default is relative to
    the directory the stack started in, and a command pasted elsewhere would miss it."""
    return f"DATA_DIR={shlex.quote(str(settings.data_dir.resolve()))} "


def _this_command() -> str:
    """The jobbridge that is running, as a path that works from any directory (the venv
    it lives in need not be on PATH, nor the directory the stack runs in)."""
    script = Path(sys.argv[0])
    if script.name != "jobbridge":  # started some other way: the name on PATH
        return "jobbridge"
    return shlex.quote(str(script.absolute()))
