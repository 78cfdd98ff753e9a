"""`jobbridge`: configuration, database, scheduled actions, and the local stack."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from config import ConfigError, Settings, get_settings, resolve_chain

app = typer.Typer(
    help="Background jobs across Inngest, QStash, Celery and direct HTTP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
accounts_app = typer.Typer(help="Email accounts.", no_args_is_help=True)
actions_app = typer.Typer(help="Scheduled actions.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
app.add_typer(actions_app, name="actions")
bulk_app = typer.Typer(help="Bulk processing: run rules over an inbox.", no_args_is_help=True)
app.add_typer(bulk_app, name="bulk")
console = Console()


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ConfigError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None


_SECRET_FIELDS = {
    "inngest_event_key",
    "inngest_signing_key",
    "inngest_signing_key_fallback",
    "qstash_token",
    "qstash_current_signing_key",
    "qstash_next_signing_key",
    "internal_api_key",
    "cron_secret",
}


def _masked(name: str, value: Any) -> str:
    if value is None:
        return "-"
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    if name in _SECRET_FIELDS or re.search(r"://[^/]*:[^@/]*@", text):
        return f"{text[:4]}…({len(text)} chars)" if len(text) > 8 else "****"
    return text


@app.command("config")
def show_config() -> None:
    """Print the effective provider chain, why each link was chosen or skipped, and settings."""
    settings = settings_or_exit()
    chain = resolve_chain(settings)
    table = Table(title="provider chain (publish order)")
    for column in ("#", "provider", "used", "why"):
        table.add_column(column)
    for index, link in enumerate(chain.links, 1):
        table.add_row(
            str(index) if link.used else "",
            link.provider.value,
            "yes" if link.used else "no",
            link.reason,
        )
    console.print(table)
    values = Table(title="settings (secrets masked)")
    values.add_column("variable")
    values.add_column("value")
    for name in Settings.model_fields:
        values.add_row(name.upper(), _masked(name, getattr(settings, name)))
    values.add_row("(database)", _masked("database_url", settings.sqlalchemy_url))
    values.add_row("(broker)", _masked("redis_url", settings.broker_url))
    console.print(values)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every Alembic migration to DATABASE_URL (creates the SQLite file by default)."""
    from tasks.schema import upgrade

    settings = settings_or_exit()
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url)
    console.print("database is up to date")


@accounts_app.command("add")
def accounts_add(
    email: str,
    maildir: Annotated[Path, typer.Option(help="Maildir folder holding this account's mail")],
) -> None:
    """Add (or update) an account whose mail lives in a local Maildir."""
    from tasks.demo import add_account

    settings_or_exit()
    account = add_account(email, maildir)
    console.print(f"account {account.email} id={account.id} maildir={maildir}")


@accounts_app.command("import")
def accounts_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML or JSON file")],
) -> None:
    """Import accounts, their rules, senders and schedules (idempotent; all or nothing)."""
    from tasks.accounts_import import AccountsFileError, import_file

    settings_or_exit()
    try:
        report = import_file(file)
    except AccountsFileError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    console.print(
        f"accounts: {report.accounts_created} created, {report.accounts_updated} updated; "
        f"rules: {report.rules}"
    )


@app.command("demo")
def demo() -> None:
    """Create (or refresh) the demo account: a Maildir of realistic mail and rules."""
    from tasks.demo import DEMO_EMAIL, ensure_demo_account
    from tasks.schema import upgrade

    settings = settings_or_exit()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url)
    account, keys = ensure_demo_account(settings.data_dir)
    maildir = account.provider_settings["path"]
    console.print(f"demo account {DEMO_EMAIL}: {len(keys)} messages in {maildir}")


@bulk_app.command("start")
def bulk_start(
    account: Annotated[str, typer.Option(help="account email or id")],
    days: Annotated[int, typer.Option(help="process mail from the last N days")] = 30,
    include_read: Annotated[bool, typer.Option(help="also messages already read")] = False,
) -> None:
    """Start a bulk run of the account's rules (one open run per account)."""
    from bridge.errors import PublishError
    from tasks.jobs import bulk_process

    settings_or_exit()
    found = _account(account)
    try:
        job = bulk_process.start(
            found.id, datetime.now(UTC) - timedelta(days=days), None, not include_read
        )
    except bulk_process.BulkJobAlreadyOpen as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    except PublishError as error:
        console.print(f"[red]could not publish the first page, the run is closed: {error}[/red]")
        raise typer.Exit(1) from None
    console.print_json(json.dumps({"jobId": job.id, "status": job.status.value}))


@bulk_app.command("show")
def bulk_show(job_id: str) -> None:
    """Print a bulk run's status and counts."""
    from tasks.jobs import bulk_process

    settings_or_exit()
    job = bulk_process.get(job_id)
    if job is None:
        console.print(f"no bulk job {job_id}")
        raise typer.Exit(1)
    fields = ("status", "pages_fetched", "total_emails", "emails_queued", "processed", "failed")
    values = {name: getattr(job, name) for name in fields}
    values["status"] = job.status.value
    console.print_json(json.dumps(values))


@app.command("clean")
def clean(
    account: Annotated[str, typer.Option(help="account email or id")],
    days_old: Annotated[int, typer.Option(help="only threads older than this many days")] = 7,
    action: Annotated[str, typer.Option(help="ARCHIVE or MARK_READ what is done")] = "ARCHIVE",
    instructions: Annotated[str | None, typer.Option(help="e.g. 'keep mail from my boss'")] = None,
) -> None:
    """Clean the inbox: decide keep or done per old thread, then archive or mark read."""
    from tasks.jobs.clean import clean_inbox
    from tasks.models import CleanAction

    settings_or_exit()
    try:
        kind = CleanAction(action.upper().replace("-", "_"))
    except ValueError:
        raise typer.BadParameter("ARCHIVE or MARK_READ", param_hint="--action") from None
    job = clean_inbox(
        _account(account).id, action=kind, days_old=days_old, instructions=instructions
    )
    console.print_json(json.dumps({"jobId": job.id, "threadsQueued": job.threads_queued}))


@app.command("categorize")
def categorize(
    account: Annotated[str, typer.Option(help="account email or id")],
    senders: Annotated[
        list[str] | None, typer.Argument(help="default: everyone in the inbox")
    ] = None,
) -> None:
    """Categorize senders (static rules, then the AI), 50 per job."""
    from email.utils import parseaddr

    from tasks.accounts import mailbox_of
    from tasks.jobs.categorize import categorize_senders

    settings_or_exit()
    found = _account(account)
    if not senders:
        _, mail = mailbox_of(found.id)
        senders, token = [], None
        while True:  # every sender with a thread in the inbox, following page tokens
            page = mail.list_threads(page_token=token, page_size=100)
            for thread_id in page.thread_ids:
                senders += [parseaddr(m.sender)[1] for m in mail.get_thread(thread_id)]
            if page.next_page_token is None:
                break
            token = page.next_page_token
    mine = found.email.lower()
    queued = categorize_senders(found.id, [s for s in senders if s and s.lower() != mine])
    console.print_json(
        json.dumps(
            {
                "jobs": queued.chunks,
                "senders": queued.senders,
                "alreadyCategorized": queued.already_categorized,
            }
        )
    )


@app.command("digest")
def send_digest_now(account: Annotated[str, typer.Option(help="account email or id")]) -> None:
    """Send the account's pending digest now, whatever its schedule says."""
    from bridge.publishing import enqueue

    settings_or_exit()
    receipt = enqueue("resend.digest", {"emailAccountId": _account(account).id, "force": True})
    console.print_json(json.dumps({"provider": receipt.provider.value, "id": receipt.id}))


def _account(account: str) -> Any:
    from sqlalchemy import or_, select

    from tasks.db import session_scope
    from tasks.models import EmailAccount

    with session_scope() as session:
        found = session.scalars(
            select(EmailAccount).where(
                or_(EmailAccount.email == account, EmailAccount.id == account)
            )
        ).first()
    if found is None:
        console.print(f"[red]no account {account!r}; add one with `jobbridge accounts add`[/red]")
        raise typer.Exit(1)
    return found


_DURATION = re.compile(r"^(\d+)([smhd])$")


def parse_when(at: str | None, delay: str | None) -> datetime:
    now = datetime.now(UTC)
    if delay:
        match = _DURATION.match(delay)
        if not match:
            raise typer.BadParameter(
                "use a number and s, m, h or d, e.g. 2s or 10m", param_hint="--in"
            )
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return now + timedelta(**{unit: int(match.group(1))})
    if at:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise typer.BadParameter(
                "use ISO 8601, e.g. 2026-12-01T09:00:00Z", param_hint="--at"
            ) from None
        if when.tzinfo is None:
            raise typer.BadParameter("add a timezone, e.g. Z or +01:00", param_hint="--at")
        return when
    return now


@actions_app.command("schedule")
def actions_schedule(
    account: Annotated[str, typer.Option(help="account email or id")],
    action_type: Annotated[
        str,
        typer.Option(
            "--type", help="ARCHIVE, LABEL, MARK_READ, MOVE_FOLDER, REPLY, SEND_EMAIL, FORWARD"
        ),
    ],
    message: Annotated[str, typer.Option(help="message id (the Maildir key)")],
    thread: Annotated[
        str | None, typer.Option(help="thread id (defaults to the message id)")
    ] = None,
    delay: Annotated[
        str | None, typer.Option("--in", help="run after this long, e.g. 2s, 10m")
    ] = None,
    at: Annotated[str | None, typer.Option(help="run at this ISO time")] = None,
    label: str | None = None,
    folder: str | None = None,
    to: str | None = None,
    subject: str | None = None,
    content: str | None = None,
) -> None:
    """Schedule an action on a message; prints the row and where it was published."""
    from tasks.models import ActionType
    from tasks.scheduled_actions import schedule

    settings_or_exit()
    try:
        kind = ActionType(action_type.upper())
    except ValueError:
        raise typer.BadParameter(
            f"one of {', '.join(t.value for t in ActionType)}", param_hint="--type"
        ) from None
    found = _account(account)
    row = schedule(
        email_account_id=found.id,
        action_type=kind,
        message_id=message,
        thread_id=thread or message,
        scheduled_for=parse_when(at, delay),
        label=label,
        folder_name=folder,
        to=to,
        subject=subject,
        content=content,
    )
    console.print_json(json.dumps(_row(row)))


def _row(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "actionType": row.action_type.value,
        "messageId": row.message_id,
        "scheduledFor": row.scheduled_for.isoformat(),
        "status": row.status.value,
        "schedulingStatus": row.scheduling_status.value,
        "provider": row.scheduled_provider,
        "scheduledId": row.scheduled_id,
        "error": row.error,
    }


@actions_app.command("cancel")
def actions_cancel(action_id: str) -> None:
    """Cancel a PENDING action (exit 1 if it was no longer pending)."""
    from tasks.scheduled_actions import cancel

    settings_or_exit()
    if not cancel(action_id):
        console.print(f"action {action_id} was not PENDING; nothing cancelled")
        raise typer.Exit(1)
    console.print(f"action {action_id} cancelled")


@actions_app.command("show")
def actions_show(action_id: str) -> None:
    """Print one scheduled action as JSON."""
    from tasks.scheduled_actions import get

    settings_or_exit()
    row = get(action_id)
    if row is None:
        console.print(f"no action {action_id}")
        raise typer.Exit(1)
    console.print_json(json.dumps(_row(row)))


@app.command("sweep")
def run_sweep() -> None:
    """Run the scheduled-action sweep once (it also runs every minute on every provider)."""
    from dataclasses import asdict

    from tasks.scheduled_actions import sweep

    settings_or_exit()
    console.print_json(json.dumps(asdict(sweep())))


@app.command("enqueue")
def enqueue_job(
    job: str,
    data: Annotated[str, typer.Option(help="the payload as JSON (camelCase fields)")],
    dedup_id: Annotated[str | None, typer.Option(help="idempotency key")] = None,
    at: Annotated[
        str | None, typer.Option(help="deliver at this ISO time (delayable jobs)")
    ] = None,
) -> None:
    """Publish one job through the provider chain and print the receipt."""
    from bridge.errors import InvalidPayload, PublishError
    from bridge.publishing import enqueue

    settings_or_exit()
    import tasks  # noqa: F401  (registers the jobs)

    try:
        payload = json.loads(data)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"not JSON: {error}", param_hint="--data") from None
    try:
        receipt = enqueue(job, payload, at=parse_when(at, None) if at else None, dedup_id=dedup_id)
    except (InvalidPayload, KeyError, ValueError, PublishError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    console.print_json(
        json.dumps(
            {
                "provider": receipt.provider.value,
                "id": receipt.id,
                "deduplicated": receipt.deduplicated,
            }
        )
    )


@app.command("dev")
def dev(
    port: int = 8000,
    flower_port: int = 5555,
    flower: Annotated[bool, typer.Option(help="also start Flower")] = True,
) -> None:
    """Migrate, seed a demo account, and run web + worker + beat (+ Flower) until Ctrl-C."""
    from bridge.devstack import run_dev_stack

    settings = settings_or_exit()
    sys.exit(run_dev_stack(settings, port=port, flower_port=flower_port, with_flower=flower))


# Operations and migration commands live in their own modules and register on `app`.
from bridge import cli_migrate, cli_ops  # noqa: E402, F401

if __name__ == "__main__":
    app()
