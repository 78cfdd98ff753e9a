"""A Celery app for the crash test: `celery -A tests.support.crashing_worker worker`.

It is the real `tasks` app, except that the first archive it performs announces the
pool process's pid in CRASH_FLAG_FILE and then hangs, so the test can SIGKILL that
process mid-task. Later archives (the redelivery) run normally.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import tasks
from tasks.mail.maildir import MaildirProvider

app = tasks.app
_archive = MaildirProvider.archive


def _archive_once_then_hang(self: MaildirProvider, message_id: str) -> None:
    flag = Path(os.environ["CRASH_FLAG_FILE"])
    try:
        with flag.open("x") as handle:  # only the first caller creates it
            handle.write(str(os.getpid()))
    except FileExistsError:
        return _archive(self, message_id)
    time.sleep(120)  # killed long before this ends
    return None


MaildirProvider.archive = _archive_once_then_hang  # type: ignore[method-assign]
