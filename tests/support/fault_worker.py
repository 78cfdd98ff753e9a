"""A Celery app for the fault tests: `celery -A tests.support.fault_worker worker`.

It is the real `tasks` app, with what takes minutes in production shortened to seconds,
and every Maildir send and archive held at a gate the test opens:

- scheduled-action leases last FAULT_LEASE_SECONDS (renewed by the heartbeat as usual),
  so the claim of a run that died runs out quickly;
- the Redis visibility timeout is FAULT_VISIBILITY_SECONDS, looked at every second, so
  a message whose worker died comes back in seconds (production's is over 20 minutes);
- a send or an archive first writes `entered.<pid>.<n>` (its pool process's pid) in
  FAULT_GATE_DIR, then waits until the file `open` exists there: the action is in
  progress, past its claim, for as long as the test wants. The effect itself is the
  real one.

With FAULT_WITHOUT_REMOTE_CONTROL set, the worker has no remote-control (pidbox)
connection. The Redis-cut test needs that to be deterministic: with celery and kombu
5.7.0, when a reset reaches the pidbox connection while a BRPOP is outstanding, closing
the broken connection raises AttributeError ("'NoneType' object has no attribute
'hostname'", from kombu's restore of unacked messages) and the whole worker stops
("Unrecoverable error") after finishing its running tasks, which it does in most tries.
That path also sends once, but it is not the one the test is about.

Only worker processes import this module; the test process never does.
"""

from __future__ import annotations

import itertools
import os
import time
from datetime import timedelta
from pathlib import Path

import tasks
from tasks import scheduled_actions
from tasks.mail.maildir import MaildirProvider
from tasks.mail.port import OutgoingMail

app = tasks.app
GATE = Path(os.environ["FAULT_GATE_DIR"])

scheduled_actions.EXECUTION_LEASE = timedelta(seconds=float(os.environ["FAULT_LEASE_SECONDS"]))
app.conf.broker_transport_options = {
    **app.conf.broker_transport_options,
    "visibility_timeout": float(os.environ["FAULT_VISIBILITY_SECONDS"]),
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}

if os.environ.get("FAULT_WITHOUT_REMOTE_CONTROL"):
    app.conf.worker_enable_remote_control = False

_entries = itertools.count()


def _wait_at_the_gate() -> None:
    (GATE / f"entered.{os.getpid()}.{next(_entries)}").write_text(str(os.getpid()))
    while not (GATE / "open").exists():
        time.sleep(0.02)


_send = MaildirProvider.send
_archive = MaildirProvider.archive


def _send_at_the_gate(self: MaildirProvider, mail: OutgoingMail) -> str:
    _wait_at_the_gate()
    return _send(self, mail)


def _archive_at_the_gate(self: MaildirProvider, message_id: str) -> None:
    _wait_at_the_gate()
    _archive(self, message_id)


MaildirProvider.send = _send_at_the_gate  # type: ignore[method-assign]
MaildirProvider.archive = _archive_at_the_gate  # type: ignore[method-assign]
