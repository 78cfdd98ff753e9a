"""`jobbridge`: configuration, database, scheduled actions, and the local stack.

Errors are plain lines on stderr, never a traceback (unless `--debug`): one place,
`_PlainErrors`, turns whatever a command did not handle into a line naming the variable
or the service, a line with the fix, and the exit status: 2 for usage or configuration,
1 for anything that went wrong while running. What users and libraries wrote (a rule's
name, a YAML error) is printed as it is: no Rich markup, and no hard wrapping.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from config import ConfigError, Settings, get_settings, resolve_chain
from config.settings import debug_requested


class _PlainErrors(TyperGroup):
    """The root command: every error a command leaves unhandled ends as plain lines."""

    # `ctx` is click's Context, which typer vendors under a private name.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own: usage errors (exit 2) and deliberate exits
        except Exception as error:
            code, message = explain(error)
            if ctx.params.get("debug") or debug_requested():
                traceback.print_exc()
            typer.secho(message, err=True, fg="red")
            raise typer.Exit(code) from None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode or sys.stderr.isatty():
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        # Not a terminal (a pipe, CI, a test): usage errors as click's plain lines rather
        # than typer's Rich panel, which is hard-wrapped at COLUMNS (80 by default).
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as error:
            show = getattr(error, "show", None)
            if callable(show):
                show()  # "Usage: ...", "Try ... --help", "Error: ..."
            else:
                typer.echo(f"Error: {error.format_message()}", err=True)
            sys.exit(error.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_PlainErrors,
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


def console() -> Console:
    """Rich on stdout, for tables and live views only: plain lines go through say() and
    fail(), JSON through emit_json(), so that nothing a script reads is wrapped or styled.
    Made when used, so that it honours COLUMNS as it is then: a Console fixes its width
    when it is created."""
    return Console()


@app.callback()
def _global_options(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="on an error, also print its Python traceback")
    ] = False,
) -> None:
    if debug:
        # Also for what reads it outside this module: importing the app, and the
        # processes `jobbridge dev` starts. Restored when the command ends (tests run
        # many commands in one process).
        previous = os.environ.get("JOBBRIDGE_DEBUG")
        os.environ["JOBBRIDGE_DEBUG"] = "1"
        ctx.call_on_close(lambda: _restore_env("JOBBRIDGE_DEBUG", previous))
    if not logging.getLogger().handlers:
        # The commands report failures themselves: the libraries' warnings about the
        # same failure (a publish that failed, logged and then raised) would say it twice.
        logging.basicConfig(
            level=logging.INFO if debug or debug_requested() else logging.ERROR,
            format="%(levelname)s %(name)s: %(message)s",
        )


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def say(text: str) -> None:
    """One plain line on stdout, as it is: no markup, no wrapping."""
    typer.echo(text)


def fail(message: str, code: int = 1) -> NoReturn:
    """Plain lines on stderr (red on a terminal), then exit with `code`."""
    typer.secho(message, err=True, fg="red")
    raise typer.Exit(code)


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def settings_or_exit() -> Settings:
    """The settings; a bad environment ends the command (exit 2) through explain()."""
    return get_settings()


# What to do when a provider would not take a job, by provider.
_PUBLISH_FIX = {
    "celery": "start Redis, or correct REDIS_URL",
    "inngest": "check INNGEST_BASE_URL and INNGEST_EVENT_KEY, and that the server is up",
    "qstash": "check QSTASH_TOKEN and QSTASH_URL",
    "http": "check INTERNAL_API_URL, and that the web app is running",
}
_STATUS_HINT = "`jobbridge status` checks every service"


def explain(error: Exception) -> tuple[int, str]:
    """Exit status and plain lines (what failed, naming the service or variable; the fix)
    for an error no command handled."""
    if isinstance(error, ConfigError):
        return 2, str(error)
    for explainer in (_database_problem, _redis_problem, _publish_problem):
        found = explainer(error)
        if found is not None:
            return found
    permanent = getattr(sys.modules.get("tasks.outcome"), "PermanentError", None)
    if permanent is not None and isinstance(error, permanent):
        return 1, str(error)  # e.g. an account whose mail provider has no adapter
    if isinstance(error, OSError):
        where = f" {error.filename}" if error.filename else ""
        return 1, (
            f"cannot use{where}: {error.strerror or error}\n"
            "fix: check that path and its permissions (DATA_DIR, DATABASE_URL, or the file given)"
        )
    return 1, (
        f"unexpected error: {type(error).__name__}: {error}\n"
        "run the command again with --debug for the traceback"
    )


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _redacted(url: str) -> str:
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)


def _database_problem(error: Exception) -> tuple[int, str] | None:
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    if isinstance(error, NoSuchModuleError) or (
        isinstance(error, ArgumentError) and "URL" in str(error)
    ):
        return 2, (
            f"DATABASE_URL is not a database URL jobbridge can use: {_first_line(error)}\n"
            "fix: e.g. postgresql://user:password@host:5432/jobbridge, or unset it for "
            "the SQLite file in DATA_DIR"
        )
    if not isinstance(error, DBAPIError):
        return None
    try:
        where = _redacted(get_settings().sqlalchemy_url)
    except ConfigError:
        where = "DATABASE_URL"
    reason = _first_line(error.orig) if error.orig is not None else _first_line(error)
    text = str(error.orig).lower()
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return 1, (
            f"the database at {where} has no jobbridge tables ({reason})\n"
            "fix: run `jobbridge db upgrade`"
        )
    return 1, (
        f"cannot use the database at {where}: {reason}\n"
        f"fix: check that it is running and that DATABASE_URL is right ({_STATUS_HINT})"
    )


def _redis_problem(error: Exception) -> tuple[int, str] | None:
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import RedisError

    if not isinstance(error, (RedisError, BrokerError)):
        return None
    broker = isinstance(error, BrokerError)
    try:
        settings = get_settings()
        where = _redacted(settings.broker_url if broker else settings.redis_url or "REDIS_URL")
    except ConfigError:
        where = "REDIS_URL"
    service = "the Celery broker" if broker else "Redis"
    return 1, (
        f"{service} at {where} failed: {_first_line(error)}\n"
        f"fix: start Redis, or correct REDIS_URL ({_STATUS_HINT})"
    )


def _publish_problem(error: Exception) -> tuple[int, str] | None:
    from bridge.errors import PublishError

    if not isinstance(error, PublishError):
        return None
    return 1, f"could not publish: {error}\n{publish_fix(error)}"


def publish_fix(error: Exception) -> str:
    """The fix line for a PublishError: what to check for each provider that failed."""
    from bridge.errors import AllProvidersFailed, PublishError

    failed = error.errors if isinstance(error, AllProvidersFailed) else [error]
    fixes = dict.fromkeys(
        _PUBLISH_FIX.get(e.provider.value, "see the error")
        for e in failed
        if isinstance(e, PublishError)
    )
    return f"fix: {'; '.join(fixes)} ({_STATUS_HINT})"


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
            Text(link.reason),
        )
    console().print(table)
    values = Table(title="settings (secrets masked)")
    values.add_column("variable")
    values.add_column("value")
    # Text, not str: a value is the user's, printed as it is, never read as Rich markup.
    for name in Settings.model_fields:
        values.add_row(name.upper(), Text(_masked(name, getattr(settings, name))))
    values.add_row("(database)", Text(_masked("database_url", settings.sqlalchemy_url)))
    values.add_row("(broker)", Text(_masked("redis_url", settings.broker_url)))
    console().print(values)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every Alembic migration to DATABASE_URL (creates the SQLite file by default)."""
    settings = settings_or_exit()
    from tasks.schema import upgrade

    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url)
    say("database is up to date")


@accounts_app.command("add")
def accounts_add(
    email: str,
    maildir: Annotated[Path, typer.Option(help="Maildir folder holding this account's mail")],
) -> None:
    """Add (or update) an account whose mail lives in a local Maildir."""
    settings_or_exit()
    from tasks.demo import add_account

    account = add_account(email, maildir)
    say(f"account {account.email} id={account.id} maildir={maildir}")


@accounts_app.command("import")
def accounts_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML or JSON file")],
) -> None:
    """Import accounts, their rules, senders and schedules (idempotent; all or nothing)."""
    settings_or_exit()
    from tasks.accounts_import import AccountsFileError, import_file

    try:
        report = import_file(file)
    except AccountsFileError as error:
        fail(str(error))
    say(
        f"accounts: {report.accounts_created} created, {report.accounts_updated} updated; "
        f"rules: {report.rules}"
    )


@app.command("demo")
def demo() -> None:
    """Create (or refresh) the demo account: a Maildir of realistic mail and rules."""
    settings = settings_or_exit()
    from tasks.demo import DEMO_EMAIL, ensure_demo_account
    from tasks.schema import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url)
    account, keys = ensure_demo_account(settings.data_dir)
    maildir = account.provider_settings["path"]
    say(f"demo account {DEMO_EMAIL}: {len(keys)} messages in {maildir}")


@bulk_app.command("start")
def bulk_start(
    account: Annotated[str, typer.Option(help="account email or id")],
    days: Annotated[int, typer.Option(help="process mail from the last N days")] = 30,
    include_read: Annotated[bool, typer.Option(help="also messages already read")] = False,
) -> None:
    """Start a bulk run of the account's rules (one open run per account)."""
    settings_or_exit()
    from bridge.errors import PublishError
    from tasks.jobs import bulk_process

    found = _account(account)
    try:
        job = bulk_process.start(
            found.id, datetime.now(UTC) - timedelta(days=days), None, not include_read
        )
    except bulk_process.BulkJobAlreadyOpen as error:
        fail(str(error))
    except PublishError as error:
        fail(f"could not publish the first page, the run is closed: {error}\n{publish_fix(error)}")
    emit_json({"jobId": job.id, "status": job.status.value})


@bulk_app.command("show")
def bulk_show(job_id: str) -> None:
    """Print a bulk run's status and counts."""
    settings_or_exit()
    from tasks.jobs import bulk_process

    job = bulk_process.get(job_id)
    if job is None:
        fail(f"no bulk job {job_id}")
    fields = ("status", "pages_fetched", "total_emails", "emails_queued", "processed", "failed")
    values = {name: getattr(job, name) for name in fields}
    values["status"] = job.status.value
    emit_json(values)


@app.command("clean")
def clean(
    account: Annotated[str, typer.Option(help="account email or id")],
    days_old: Annotated[int, typer.Option(help="only threads older than this many days")] = 7,
    action: Annotated[str, typer.Option(help="ARCHIVE or MARK_READ what is done")] = "ARCHIVE",
    instructions: Annotated[str | None, typer.Option(help="e.g. 'keep mail from my boss'")] = None,
) -> None:
    """Clean the inbox: decide keep or done per old thread, then archive or mark read."""
    settings_or_exit()
    from tasks.jobs.clean import clean_inbox
    from tasks.models import CleanAction

    try:
        kind = CleanAction(action.upper().replace("-", "_"))
    except ValueError:
        raise typer.BadParameter("ARCHIVE or MARK_READ", param_hint="--action") from None
    job = clean_inbox(
        _account(account).id, action=kind, days_old=days_old, instructions=instructions
    )
    emit_json({"jobId": job.id, "threadsQueued": job.threads_queued})


@app.command("categorize")
def categorize(
    account: Annotated[str, typer.Option(help="account email or id")],
    senders: Annotated[
        list[str] | None, typer.Argument(help="default: everyone in the inbox")
    ] = None,
) -> None:
    """Categorize senders (static rules, then the AI), 50 per job."""
    settings_or_exit()
    from email.utils import parseaddr

    from tasks.accounts import mailbox_of
    from tasks.jobs.categorize import categorize_senders

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
    emit_json(
        {
            "jobs": queued.chunks,
            "senders": queued.senders,
            "alreadyCategorized": queued.already_categorized,
        }
    )


@app.command("digest")
def send_digest_now(account: Annotated[str, typer.Option(help="account email or id")]) -> None:
    """Send the account's pending digest now, whatever its schedule says."""
    settings_or_exit()
    from bridge.publishing import enqueue

    receipt = enqueue("resend.digest", {"emailAccountId": _account(account).id, "force": True})
    emit_json({"provider": receipt.provider.value, "id": receipt.id})


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
        fail(f"no account {account}; add one with `jobbridge accounts add`")
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


# The option that gave each field schedule() may refuse.
_SCHEDULE_OPTION = {
    "label": "--label",
    "folder_name": "--folder",
    "to": "--to",
    "message_id": "--message",
    "email_account_id": "--account",
}


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
    label: Annotated[str | None, typer.Option(help="the label (LABEL)")] = None,
    folder: Annotated[str | None, typer.Option(help="the folder (MOVE_FOLDER)")] = None,
    to: Annotated[str | None, typer.Option(help="the recipient (SEND_EMAIL, FORWARD)")] = None,
    subject: str | None = None,
    content: str | None = None,
) -> None:
    """Schedule an action on a message; prints the row and where it was published."""
    settings_or_exit()
    from tasks.models import ActionType
    from tasks.scheduled_actions import ActionRefused, schedule

    try:
        kind = ActionType(action_type.upper())
    except ValueError:
        raise typer.BadParameter(
            f"one of {', '.join(t.value for t in ActionType)}", param_hint="--type"
        ) from None
    found = _account(account)
    try:
        row = schedule(
            email_account_id=found.id,
            action_type=kind,
            message_id=message,
            thread_id=thread or message,
            scheduled_for=parse_when(at, delay),
            verify_message=True,
            label=label,
            folder_name=folder,
            to=to,
            subject=subject,
            content=content,
        )
    except ActionRefused as error:
        raise typer.BadParameter(
            str(error), param_hint=_SCHEDULE_OPTION.get(error.field, error.field)
        ) from None
    emit_json(_row(row))


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
    settings_or_exit()
    from tasks.scheduled_actions import cancel

    if not cancel(action_id):
        fail(f"action {action_id} was not PENDING; nothing cancelled")
    say(f"action {action_id} cancelled")


@actions_app.command("show")
def actions_show(action_id: str) -> None:
    """Print one scheduled action as JSON."""
    settings_or_exit()
    from tasks.scheduled_actions import get

    row = get(action_id)
    if row is None:
        fail(f"no action {action_id}")
    emit_json(_row(row))


@app.command("sweep")
def run_sweep() -> None:
    """Run the scheduled-action sweep once (it also runs every minute on every provider)."""
    settings_or_exit()
    from dataclasses import asdict

    from tasks.scheduled_actions import sweep

    emit_json(asdict(sweep()))


@app.command("enqueue")
def enqueue_job(
    job: str,
    data: Annotated[str, typer.Option(help="the payload as a JSON object (camelCase fields)")],
    dedup_id: Annotated[str | None, typer.Option(help="idempotency key")] = None,
    at: Annotated[
        str | None, typer.Option(help="deliver at this ISO time (delayable jobs)")
    ] = None,
) -> None:
    """Publish one job through the provider chain and print the receipt."""
    settings_or_exit()
    from bridge.errors import InvalidPayload
    from bridge.publishing import enqueue
    from tasks.registry import job_for

    try:
        payload = json.loads(data)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"not JSON: {error}", param_hint="--data") from None
    if not isinstance(payload, dict):
        raise typer.BadParameter(
            'must be a JSON object, e.g. \'{"scheduledActionId": "a1"}\'', param_hint="--data"
        )
    try:
        spec = job_for(job)
    except KeyError as error:
        fail(str(error.args[0]))  # the message itself: str(KeyError) would quote it
    when = parse_when(at, None) if at else None
    try:
        receipt = enqueue(spec, payload, at=when, dedup_id=dedup_id)
    except (InvalidPayload, ValueError) as error:
        fail(str(error))
    emit_json(
        {
            "provider": receipt.provider.value,
            "id": receipt.id,
            "deduplicated": receipt.deduplicated,
        }
    )


@app.command("dev")
def dev(
    port: int = 8000,
    flower_port: int = 5555,
    flower: Annotated[bool, typer.Option(help="also start Flower")] = True,
) -> None:
    """Migrate, seed a demo account, and run web + worker + beat (+ Flower) until Ctrl-C."""
    settings = settings_or_exit()
    from bridge.devstack import run_dev_stack

    sys.exit(run_dev_stack(settings, port=port, flower_port=flower_port, with_flower=flower))


# Operations and migration commands live in their own modules and register on `app`.
from bridge import cli_migrate, cli_ops  # noqa: E402, F401

if __name__ == "__main__":
    app()
