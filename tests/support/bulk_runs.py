"""A RUNNING bulk run of a new account, on the database a test asks for: PostgreSQL
(the suite's) or a SQLite file (the embedded default), migrated like a new install."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bridge.store.db import session_scope
from tasks.models import BulkJobStatus, BulkProcessJob, EmailAccount, utcnow
from tasks.schema import upgrade


def use_database(database: str, configure: Callable[..., Any], tmp_path: Path) -> None:
    """The suite's PostgreSQL database as it is, or a new SQLite file, migrated."""
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'embedded.db'}"
        configure(DATABASE_URL=url)
        upgrade(url)


def running_run(
    database: str, configure: Callable[..., Any], tmp_path: Path, **job: Any
) -> BulkProcessJob:
    """The run (its account made for it), with `job`'s columns set."""
    use_database(database, configure, tmp_path)
    with session_scope() as session:
        account = EmailAccount(email=f"bulk-{database}@example.test", provider="maildir")
        session.add(account)
        session.flush()
        row = BulkProcessJob(
            email_account_id=account.id,
            start_date=utcnow() - timedelta(days=1),
            status=BulkJobStatus.RUNNING,
            **job,
        )
        session.add(row)
    return row
