"""`jobbridge qstash`: drain what QStash still holds for this app. `messages` counts its
messages by route and state (from the logs), `dlq list|replay|delete` works on its
dead-letter queue, `schedules` lists its schedules.

The work is in `bridge.qstash.drain`; this module parses options, renders and picks exit
codes. Every command needs QSTASH_TOKEN (exit 2 without it); QStash unreachable or
refusing the token is one line and exit 1.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import typer
from qstash import QStash
from qstash.errors import QStashError
from rich.table import Table
from rich.text import Text

from bridge.cli.root import (
    app,
    command_group,
    console,
    emit_json,
    fail,
    in_utc,
    loaded_app,
    say,
    settings_or_exit,
)
from bridge.ops.audit import qstash_client
from bridge.payload import Payload
from bridge.publishing import enqueue
from bridge.qstash import drain
from bridge.qstash import schedules as qstash_schedules
from bridge.receipt import Receipt
from bridge.registry import JobSpec

qstash_app = command_group(
    help="What QStash still holds for this app: messages, dead letters, schedules.",
    no_args_is_help=True,
)
dlq_app = command_group(
    help="QStash's dead-letter queue: list, replay through the current chain, delete.",
    no_args_is_help=True,
)
qstash_app.add_typer(dlq_app, name="dlq")
app.add_typer(qstash_app, name="qstash")

TIMEOUT = 10.0  # seconds per request to QStash's API
ALL_AT_MOST = 10_000  # dead letters `--all` reads in one run; run it again for more
_AGO = re.compile(r"^(\d+)([mhd])$")
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON object")]
IdsArgument = Annotated[list[str] | None, typer.Argument(help="DLQ ids", show_default=False)]
AllOption = Annotated[bool, typer.Option("--all", help="every entry in the DLQ")]


@dataclass(frozen=True)
class _QStash:
    client: QStash
    routes: drain.Routes
    where: str  # QStash's API, for error lines


def _connect() -> _QStash:
    settings = settings_or_exit()
    if settings.qstash_token is None:
        fail("QSTASH_TOKEN is not set: `jobbridge qstash` reads QStash's API with it", code=2)
    routes = drain.Routes(loaded_app().registry, settings.webhook_url)
    where = settings.qstash_url or "https://qstash.upstash.io"
    return _QStash(qstash_client(settings, TIMEOUT), routes, where)


@contextmanager
def _answered(where: str) -> Iterator[None]:
    """QStash's failures (unreachable, 401, 5xx) as one line and exit 1."""
    try:
        yield
    except (QStashError, httpx.HTTPError) as error:
        fail(drain.describe_failure(error, where) or str(error))


def _since(text: str) -> datetime:
    now = datetime.now(UTC)
    match = _AGO.match(text)
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        try:
            return now - timedelta(**{unit: int(match.group(1))})
        except OverflowError:
            raise typer.BadParameter("too far back", param_hint="--since") from None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            "use a duration back from now (30m, 12h, 7d) or an ISO time with a timezone",
            param_hint="--since",
        ) from None
    return in_utc(when, "--since")  # the table's times are UTC


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value is not None else "-"


@qstash_app.command("messages")
def messages(
    since: Annotated[
        str, typer.Option(help="read the logs from then: 30m, 12h, 7d back, or an ISO time")
    ] = "7d",
    max_pages: Annotated[
        int, typer.Option(min=1, help=f"read at most this many pages of {drain.LOG_PAGE}")
    ] = 20,
    as_json: JsonOption = False,
) -> None:
    """Messages by route (WEBHOOK_URL + a job's route or alias) and by the state of their
    latest log entry: what QStash still holds (CREATED, ACTIVE, RETRY, ERROR) and how the
    others ended."""
    start = _since(since)
    qstash = _connect()
    with _answered(qstash.where):
        counts = drain.count_messages(
            qstash.client, qstash.routes, since=start, max_pages=max_pages
        )
    if as_json:
        emit_json(counts.as_json())
        return
    states = counts.states()
    table = Table(title=f"QStash messages since {_when(counts.since)} UTC, by latest state")
    for column in ("route", *states, "total"):
        table.add_column(column, justify="left" if column == "route" else "right")
    for label, by_state in sorted(counts.by_destination.items()):
        cells = [str(by_state.get(state, 0)) for state in states]
        table.add_row(Text(label), *cells, str(sum(by_state.values())))
    if counts.by_destination:
        console().print(table)
    total = counts.by_state
    pending = ", ".join(f"{state} {total.get(state, 0)}" for state in drain.PENDING_STATES)
    say(f"still in QStash: {counts.pending} messages ({pending})")
    say(f"read {counts.entries} log entries in {counts.pages} pages")
    if counts.truncated:
        say(
            f"note: stopped after {counts.pages} pages: older log entries were not read "
            "(raise --max-pages, or give a later --since)"
        )


@dlq_app.command("list")
def dlq_list(
    cursor: Annotated[
        str | None, typer.Option(help="start here (the cursor a previous list printed)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="list at most this many entries")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Dead letters: dlq id, message id, route and job, last response status, created at,
    retries (the message's maximum, all spent)."""
    qstash = _connect()
    with _answered(qstash.where):
        listing = drain.list_dead_letters(qstash.client, qstash.routes, cursor=cursor, limit=limit)
    if as_json:
        emit_json(
            {
                "entries": [_letter_json(letter) for letter in listing.letters],
                "cursor": listing.cursor,
            }
        )
        return
    table = Table(title="QStash DLQ")
    for column in ("dlq id", "message id", "route / job", "status", "created at", "retries"):
        table.add_column(column)
    for letter in listing.letters:
        message = letter.message
        table.add_row(
            Text(message.dlq_id),
            Text(message.message_id),
            Text(letter.destination.label),
            str(message.response_status),
            _when(letter.created_at),
            str(message.max_retries),
        )
    if listing.letters:
        console().print(table)
    say(f"{len(listing.letters)} dead letters listed")
    if listing.cursor is not None:
        say(f"more: jobbridge qstash dlq list --cursor {listing.cursor}")


def _letter_json(letter: drain.DeadLetter) -> dict[str, Any]:
    message = letter.message
    return {
        "dlqId": message.dlq_id,
        "messageId": message.message_id,
        "destination": letter.destination.as_json(),
        "label": letter.destination.label,
        "responseStatus": message.response_status,
        "createdAt": letter.created_at.isoformat(),
        "maxRetries": message.max_retries,
        "dedupId": letter.dedup_id,
    }


def _chosen(ids: list[str] | None, every: bool) -> list[str]:
    if every and ids:
        raise typer.BadParameter("give DLQ ids or --all, not both", param_hint="--all")
    if not every and not ids:
        raise typer.BadParameter("give DLQ ids, or --all for every entry", param_hint="DLQ_IDS")
    return ids or []


def _every_letter(qstash: _QStash) -> list[drain.DeadLetter]:
    listing = drain.list_dead_letters(qstash.client, qstash.routes, limit=ALL_AT_MOST)
    if listing.cursor is not None:
        say(f"note: the first {ALL_AT_MOST} entries only; run the command again for the rest")
    return listing.letters


def _publish(spec: JobSpec[Any], payload: Payload, dedup_id: str) -> Receipt:
    return enqueue(spec, payload, dedup_id=dedup_id)


@dlq_app.command("replay")
def dlq_replay(ids: IdsArgument = None, every: AllOption = False) -> None:
    """Publish each dead letter's body again through the CURRENT provider chain (its job
    found from its URL; dedup id: the original one, else QStash's message id), then delete
    it from the DLQ. A body the job's payload refuses is named and left. Exit 1 when any
    entry was left."""
    chosen = _chosen(ids, every)
    qstash = _connect()
    outcomes: list[drain.ReplayOutcome] = []
    with _answered(qstash.where):
        if every:
            found: list[tuple[str, drain.DeadLetter | None]] = [
                (letter.message.dlq_id, letter) for letter in _every_letter(qstash)
            ]
        else:
            found = drain.get_dead_letters(qstash.client, qstash.routes, chosen)
        for dlq_id, letter in found:
            if letter is None:
                outcome = drain.not_found(dlq_id)
            else:
                outcome = drain.replay(qstash.client, letter, _publish, qstash.where)
            say(outcome.line())  # as it happens: a long replay shows its progress
            outcomes.append(outcome)
    done = sum(outcome.replayed for outcome in outcomes)
    say(f"replayed {done} of {len(outcomes)}; left in the DLQ: {len(outcomes) - done}")
    if any(not o.replayed or o.not_removed is not None for o in outcomes):
        raise typer.Exit(1)


def _stdin_is_terminal() -> bool:
    """Whether a confirmation can be asked: never wait on a pipe or a closed stdin."""
    return sys.stdin is not None and sys.stdin.isatty()


@dlq_app.command("delete")
def dlq_delete(
    ids: IdsArgument = None,
    every: AllOption = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Delete dead letters for good: QStash will not deliver them. Asks first, unless --yes
    (and refuses, exit 2, when it cannot ask: stdin is not a terminal)."""
    chosen = _chosen(ids, every)
    qstash = _connect()
    with _answered(qstash.where):
        if every:
            chosen = [letter.message.dlq_id for letter in _every_letter(qstash)]
        if not chosen:
            say("the DLQ is empty: nothing to delete")
            return
        shown = ", ".join(chosen[:5]) + (", ..." if len(chosen) > 5 else "")
        if not yes:
            if not _stdin_is_terminal():
                fail(
                    f"refusing to delete {len(chosen)} DLQ entries without confirmation "
                    "(stdin is not a terminal): pass --yes",
                    code=2,
                )
            if not typer.confirm(f"Delete {len(chosen)} DLQ entries ({shown}) for good?"):
                fail("nothing deleted")
        deleted = drain.delete_dead_letters(qstash.client, chosen)
    missing = len(chosen) - deleted
    unknown = f" ({missing} not found)" if missing else ""
    say(f"deleted {deleted} of {len(chosen)} DLQ entries{unknown}")


@qstash_app.command("schedules")
def schedules(as_json: JsonOption = False) -> None:
    """QStash's schedules: id, cron, destination and the job route it calls, paused, last
    and next run."""
    qstash = _connect()
    with _answered(qstash.where):
        rows = qstash_schedules.list_schedules(qstash.client, qstash.routes)
    if as_json:
        emit_json({"schedules": [row.as_json() for row in rows]})
        return
    table = Table(title="QStash schedules")
    for column in ("id", "cron", "destination", "route / job", "paused", "last run", "next run"):
        table.add_column(column)
    for row in rows:
        s = row.schedule
        table.add_row(
            Text(s.schedule_id),
            Text(s.cron),
            Text(s.destination),
            Text(row.destination.label if row.destination.route else "-"),
            "yes" if s.paused else "no",
            _when(drain.from_millis(s.last_schedule_time) if s.last_schedule_time else None),
            _when(drain.from_millis(s.next_schedule_time) if s.next_schedule_time else None),
        )
    if rows:
        console().print(table)
    say(f"{len(rows)} schedules")
