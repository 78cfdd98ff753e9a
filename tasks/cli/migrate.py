"""`jobbridge migrate qstash-to-inngest`: move pending scheduled actions to Inngest."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import func, select

from bridge.cli.root import command_group, fail, parse_when, say, settings_or_exit
from bridge.errors import PublishError
from bridge.inngest.publisher import MAX_EVENTS_PER_REQUEST
from bridge.store.db import session_scope
from tasks.cli.groups import commands
from tasks.migrate_to_inngest import MigrationRefused, migrate_qstash_to_inngest
from tasks.models import ActionStatus, ScheduledAction

migrate_app = command_group(help="Move work from one provider to another.", no_args_is_help=True)
commands.add_typer(migrate_app, name="migrate")


def _pending_count(since: datetime | None) -> int:
    statement = select(func.count()).where(ScheduledAction.status == ActionStatus.PENDING)
    if since is not None:
        statement = statement.where(ScheduledAction.scheduled_for >= since)
    with session_scope() as session:
        return int(session.scalar(statement) or 0)


@migrate_app.command("qstash-to-inngest")
def qstash_to_inngest(
    dry_run: Annotated[
        bool, typer.Option(help="count what would be sent; write and send nothing")
    ] = False,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1, max=MAX_EVENTS_PER_REQUEST, help="events per request (Inngest: at most 5,000)"
        ),
    ] = MAX_EVENTS_PER_REQUEST,
    since: Annotated[
        str | None, typer.Option(help="only actions scheduled at or after this ISO time")
    ] = None,
    audit_log: Annotated[
        Path | None, typer.Option(help="JSON lines, one per action (default: DATA_DIR)")
    ] = None,
) -> None:
    """Send one Inngest event per PENDING scheduled action; safe to run again or resume."""
    settings = settings_or_exit()
    log_path = audit_log or settings.data_dir / "migrate-qstash-to-inngest.jsonl"
    start = parse_when(since, None, at_option="--since") if since else None
    with Progress(
        TextColumn("migrating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),  # stdout has the report alone
        transient=True,
    ) as bar:
        task = bar.add_task("migrate", total=_pending_count(start))
        try:
            report = migrate_qstash_to_inngest(
                settings,
                audit_log=log_path,
                batch_size=batch_size,
                since=start,
                dry_run=dry_run,
                progress=lambda n: bar.advance(task, n),
            )
        except MigrationRefused as error:
            fail(f"refused: {error}", error.exit_code)
        except PublishError as error:
            fail(
                f"interrupted: {error}\nRun the same command again: it resumes "
                f"from the audit log {log_path} and sends nothing twice."
            )
    verb = "would send" if dry_run else "sent"
    say(
        f"pending {report.pending}: {verb} {report.sent} in {report.requests} requests; "
        f"already sent earlier {report.already_sent}; left to the sweep (over 366 days) "
        f"{report.beyond_inngest}" + ("" if dry_run else f"\naudit log: {log_path}")
    )
