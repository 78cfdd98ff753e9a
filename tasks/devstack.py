"""What `jobbridge dev` does for the inbox app before the stack starts: migrate the
database, seed the demo account, and say how to try it."""

from __future__ import annotations

from config import Settings
from tasks.demo import ensure_demo_account
from tasks.schema import upgrade


def prepare_dev(settings: Settings) -> list[str]:
    upgrade(settings.sqlalchemy_url)
    _, keys = ensure_demo_account(settings.data_dir)
    maildir = settings.data_dir.resolve() / "maildir" / "demo"
    message = keys[0] if keys else "<message id>"
    return [
        "Try it: archive a demo message 2 seconds from now, then watch it move.",
        "  .venv/bin/jobbridge actions schedule --account demo@localhost --type ARCHIVE \\",
        f"      --message {message} --in 2s",
        f"  ls {maildir}/.Archive/cur",
        "Run the demo rules over the whole inbox, then watch the counts:",
        "  .venv/bin/jobbridge bulk start --account demo@localhost --include-read",
        "  .venv/bin/jobbridge bulk show <jobId it prints>",
    ]
