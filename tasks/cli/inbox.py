"""The inbox app's commands: `db`, `accounts`, `demo`, `bulk`, `clean`, `categorize`,
`digest`, `actions` and `sweep`."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any

import typer

from bridge.cli.errors import publish_fix
from bridge.cli.root import (
    emit_json,
    fail,
    say,
    settings_or_exit,
)
from bridge.errors import PublishError
from bridge.outcome import PermanentError, RetryLater
from bridge.publishing import enqueue
from bridge.store.db import session_scope
from tasks.account_lookup import stored_account
from tasks.accounts import mailbox_of
from tasks.accounts_file import AccountsFileError, in_or_above, maildir_account_problems
from tasks.accounts_import import import_file
from tasks.cli.groups import accounts_app, bulk_app, commands, db_app
from tasks.demo import DEMO_EMAIL, add_account, ensure_demo_account
from tasks.jobs import bulk_process
from tasks.jobs.categorize import categorize_senders
from tasks.jobs.categorize_addresses import describe_unusable, sort_senders
from tasks.jobs.clean import clean_inbox
from tasks.jobs.digest import SendDigest, send_digest
from tasks.mail.imap_accounts import imap_provider
from tasks.mail.imap_check import check_imap
from tasks.models import (
    CleanAction,
    EmailAccount,
    MailProviderKind,
)
from tasks.scheduled_actions import sweep
from tasks.schema import current_revision, upgrade


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every Alembic migration to DATABASE_URL (creates the SQLite file by default)."""
    settings = settings_or_exit()

    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    before = current_revision(settings.sqlalchemy_url)
    upgrade(settings.sqlalchemy_url)
    after = current_revision(settings.sqlalchemy_url)
    if before == after:
        say(f"database is up to date (migration {after})")
    else:
        say(f"database migrated: {before or 'empty'} -> {after}")


# The argument of `accounts add` each field of an accounts file entry comes from.
_ADD_ARGUMENT = {"email": "EMAIL", "maildir": "--maildir"}


@accounts_app.command("add")
def accounts_add(
    email: str,
    maildir: Annotated[Path, typer.Option(help="Maildir folder holding this account's mail")],
) -> None:
    """Add (or update) an account whose mail lives in a local Maildir (checked as an
    entry of `accounts import` is; a bad argument writes nothing)."""
    settings_or_exit()

    # Checked before add_account, which makes the folders and then stores the account.
    problems = maildir_account_problems(email, maildir)
    if problems:
        lines = [f"{_ADD_ARGUMENT.get(p.where, p.where)}: {p.message}" for p in problems]
        fail("\n".join(lines), code=2)  # 2: a bad argument, as click answers one
    try:
        account = add_account(email, maildir)
    except OSError as error:
        if not in_or_above(error.filename, maildir):
            raise  # not the Maildir's (e.g. DATA_DIR's): told as any such error is
        # Its folders could not be made after all (made before the account is stored).
        fail(f"--maildir: cannot use {error.filename}: {error.strerror}", code=2)
    say(f"account {account.email} id={account.id} maildir={maildir}")


@accounts_app.command("import")
def accounts_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML or JSON file")],
) -> None:
    """Import accounts, their rules, senders and schedules (idempotent; all or nothing)."""
    settings_or_exit()

    try:
        report = import_file(file)
    except AccountsFileError as error:
        fail(str(error))
    say(
        f"accounts: {report.accounts_created} created, {report.accounts_updated} updated; "
        f"rules: {report.rules}"
    )


@accounts_app.command("check")
def accounts_check(email: Annotated[str, typer.Argument(help="the account's address")]) -> None:
    """Log in to the account's mail servers and say what the jobs will use and what is
    missing (changes nothing). Exit 1 when the account cannot work as it is."""
    settings_or_exit()

    found = account_named(email)
    if found.provider is not MailProviderKind.IMAP:
        kind = found.provider.value
        try:
            # One listed thread proves the token, the scopes and the API all work.
            mailbox_of(found.id)[1].list_threads(page_size=1)
        except (PermanentError, RetryLater) as error:
            fail(f"{found.email} ({kind}): {error}")
        say(f"{found.email} ({kind}): ready")
        return
    try:
        provider = imap_provider(found.email, found.provider_settings)
    except PermanentError as error:
        fail(f"{found.email} (imap): {error}")
    try:
        findings = check_imap(provider)
    finally:
        provider.close()
    say(f"{found.email} (imap)")
    for finding in findings:
        say(f"  {finding.topic:<8} {'PROBLEM: ' if finding.problem else ''}{finding.text}")
    if any(finding.problem for finding in findings):
        raise typer.Exit(1)


@commands.command("demo")
def demo() -> None:
    """Create (or refresh) the demo account: a Maildir of realistic mail and rules."""
    settings = settings_or_exit()

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url)
    account, keys = ensure_demo_account(settings.data_dir)
    maildir = account.provider_settings["path"]
    say(f"demo account {DEMO_EMAIL}: {len(keys)} messages in {maildir}")


@bulk_app.command("start")
def bulk_start(
    account: Annotated[str, typer.Option(help="account email or id")],
    days: Annotated[
        int, typer.Option(help="process mail from the last N days", min=1, max=36500)
    ] = 30,
    include_read: Annotated[bool, typer.Option(help="also messages already read")] = False,
    force_reprocess: Annotated[
        bool, typer.Option(help="apply the rules again to messages that have a result")
    ] = False,
) -> None:
    """Start a bulk run of the account's rules (one open run per account)."""
    settings_or_exit()

    found = account_named(account)
    try:
        job = bulk_process.start(
            found.id,
            datetime.now(UTC) - timedelta(days=days),
            None,
            not include_read,
            force_reprocess,
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

    job = bulk_process.get(job_id)
    if job is None:
        fail(f"no bulk job {job_id}")
    # camelCase, as the other commands print and the start route answers.
    values: dict[str, Any] = {
        "jobId": job.id,
        "status": job.status.value,
        "pagesFetched": job.pages_fetched,
        "totalEmails": job.total_emails,
        "emailsQueued": job.emails_queued,
        "processed": job.processed,
        "failed": job.failed,
    }
    if job.error:
        values["error"] = job.error
    emit_json(values)


@bulk_app.command("cancel")
def bulk_cancel(job_id: str) -> None:
    """Cancel an open bulk run: its queued messages are skipped when delivered."""
    settings_or_exit()

    if not bulk_process.cancel(job_id):
        job = bulk_process.get(job_id)
        fail(f"no bulk job {job_id}" if job is None else f"bulk job {job_id} is {job.status.value}")
    emit_json({"jobId": job_id, "status": "CANCELLED"})


@commands.command("clean")
def clean(
    account: Annotated[str, typer.Option(help="account email or id")],
    days_old: Annotated[
        int, typer.Option(help="only threads older than this many days", min=0, max=36500)
    ] = 7,
    action: Annotated[str, typer.Option(help="ARCHIVE or MARK_READ what is done")] = "ARCHIVE",
    instructions: Annotated[str | None, typer.Option(help="e.g. 'keep mail from my boss'")] = None,
) -> None:
    """Clean the inbox: decide keep or done per old thread, then archive or mark read."""
    settings_or_exit()

    try:
        kind = CleanAction(action.upper().replace("-", "_"))
    except ValueError:
        raise typer.BadParameter("ARCHIVE or MARK_READ", param_hint="--action") from None
    job = clean_inbox(
        account_named(account).id, action=kind, days_old=days_old, instructions=instructions
    )
    emit_json({"jobId": job.id, "threadsQueued": job.threads_queued})


@commands.command("categorize")
def categorize(
    account: Annotated[str, typer.Option(help="account email or id")],
    senders: Annotated[
        list[str] | None, typer.Argument(help="default: everyone in the inbox")
    ] = None,
) -> None:
    """Categorize senders (static rules, then the AI), 50 per job."""
    settings_or_exit()

    found = account_named(account)
    if senders and (left_out := describe_unusable(sort_senders(senders).unusable)):
        typer.secho(left_out, err=True, fg="yellow")  # named here, counted below
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
    # Blanks (a From line parseaddr could not read) go too: the producer counts them.
    queued = categorize_senders(found.id, [s for s in senders if s.strip().lower() != mine])
    emit_json(
        {
            "jobs": queued.chunks,
            "senders": queued.senders,
            "alreadyCategorized": queued.already_categorized,
            "unusable": queued.unusable,  # entries that are no usable address, left out
        }
    )


@commands.command("digest")
def send_digest_now(account: Annotated[str, typer.Option(help="account email or id")]) -> None:
    """Send the account's pending digest now, whatever its schedule says."""
    settings_or_exit()

    payload = SendDigest(email_account_id=account_named(account).id, force=True)
    receipt = enqueue(send_digest, payload)
    emit_json({"provider": receipt.provider.value, "id": receipt.id})


def account_named(account: str) -> Any:
    """The account by id, or by address in any case (as the accounts file matches it)."""
    with session_scope() as session:
        found = session.get(EmailAccount, account) or stored_account(session, account)
    if found is None:
        fail(f"no account {account}; add one with `jobbridge accounts add`")
    return found


@commands.command("sweep")
def run_sweep() -> None:
    """Run the scheduled-action sweep once (it also runs every minute on every provider).
    Exits 1 when a due action could not be published."""
    settings_or_exit()

    report = sweep()
    emit_json(asdict(report))
    if report.failed:
        fail(
            f"{report.failed} due action(s) could not be published: see their error with "
            "`jobbridge actions show ID`; they stay FAILED and the next sweep tries again"
        )
