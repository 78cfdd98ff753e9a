"""The operator commands `keys`, `audit`, `sync` and `status`.

The work is in `bridge.ops`; this module only parses options, renders and picks exit codes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from bridge.apps import AppAudit, AuditResult
from bridge.cli.root import app, console, fail, loaded_app, say, settings_or_exit
from bridge.ops import (
    QStashAudit,
    StatusReport,
    audit_qstash,
    check_database,
    collect_status,
    every,
    generate_keys,
    sync_app,
    sync_url,
    write_env_file,
)
from bridge.ops.inngest_runs import HeldRuns, held_runs
from bridge.ops.probes import MIGRATE_HINT
from config import ProviderChain, Settings


@app.command("keys")
def keys(
    env_file: Annotated[
        Path | None,
        typer.Option(
            help="append the keys to this dotenv file; variables already set there are kept"
        ),
    ] = None,
) -> None:
    """Generate an Inngest event key (16 bytes) and signing key (32 bytes), as hex env lines."""
    values = generate_keys().env()
    if env_file is None:
        # Plain stdout, no rich wrapping: `jobbridge keys >> .env` must give valid lines.
        for name, value in values.items():
            typer.echo(f"{name}={value}")
        return
    try:
        update = write_env_file(env_file, values)
    except UnicodeDecodeError:
        raise typer.BadParameter(
            f"{env_file} is not UTF-8 text, as a dotenv file is", param_hint="--env-file"
        ) from None
    # The lines written, as without --env-file (the Inngest server needs the same keys);
    # a kept value is never printed: it is a secret the operator already has.
    for name in update.written:
        typer.echo(f"{name}={values[name]}")
    if update.written:
        say(f"added {', '.join(update.written)} to {env_file}")
    for name in update.kept:
        say(f"kept {name}: already set in {env_file} (not overwritten)")


@app.command("audit")
def audit(
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The app's counts (scheduled actions by status, due, stuck); QStash queues and DLQ."""
    settings = settings_or_exit()
    audit_of_app = loaded_app().audit
    # The status probe's connection: a connect timeout instead of libpq's "forever", and
    # a missing SQLite file reported rather than created empty.
    database, counted = check_database(settings, timeout=5.0, audit=audit_of_app)
    if not database.ok or (audit_of_app is not None and counted is None):
        what = f"cannot audit {audit_of_app.title}: " if audit_of_app is not None else ""
        # The detail names the migrations when they are what is missing.
        fix = (
            "run the app's migrations"
            if MIGRATE_HINT in database.detail
            else "check that it is running and that DATABASE_URL is right"
        )
        fail(f"database: {what}{database.detail}\nfix: {fix}")
    qstash = audit_qstash(settings) if settings.qstash_token is not None else None
    held = _held_inngest_runs(settings, counted)
    if as_json:
        report: dict[str, Any] = {}
        if audit_of_app is not None and counted is not None:
            report[audit_of_app.json_key] = counted.as_json()
        report["qstash"] = qstash.as_json() if qstash is not None else None
        report["inngest"] = {"heldRuns": held.as_json()} if held is not None else None
        typer.echo(json.dumps(report))
    else:
        if audit_of_app is not None and counted is not None:
            console().print(_audit_table(audit_of_app, counted))
        console().print(_qstash_lines(qstash))
        if held is not None:
            console().print(Text(held.line()))
    if qstash is not None and qstash.error is not None:
        # Scripts must see that the QStash half is missing, not only read it in the JSON.
        if not as_json:
            fix = "check QSTASH_URL and QSTASH_TOKEN, and that QStash is up"
            fail(f"qstash: {qstash.error}\nfix: {fix}")
        raise typer.Exit(1)


def _held_inngest_runs(settings: Settings, counted: AuditResult | None) -> HeldRuns | None:
    """Runs Inngest still holds for work the app no longer needs; None where it cannot
    know (no signing key to ask with, or the app counts nothing)."""
    if counted is None or settings.inngest_signing_key is None:
        return None
    events, total = counted.settled_inngest_events, counted.settled_inngest_total
    return held_runs(settings, events, total) if events else HeldRuns(0, total, 0)


def _audit_table(audit: AppAudit, counted: AuditResult) -> Table:
    table = Table(title=audit.title)
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, value in counted.rows():
        table.add_row(Text(label), value)
    return table


def _qstash_lines(qstash: QStashAudit | None) -> RenderableType:
    if qstash is None:
        return Text("qstash: not configured (no QSTASH_TOKEN)")
    if qstash.error is not None and not qstash.queues:
        return Text(f"qstash: unreachable: {qstash.error}")
    table = Table(title="qstash queues")
    for column in ("queue", "lag", "paused", "parallelism"):
        table.add_column(column, overflow="fold")
    for queue in qstash.queues:
        table.add_row(
            Text(queue.name),
            str(queue.lag),
            "yes" if queue.paused else "no",
            str(queue.parallelism),
        )
    if qstash.dlq_size is None:
        dlq = "qstash DLQ: unknown"
    else:
        bound = "at least " if qstash.dlq_size_is_lower_bound else ""
        dlq = f"qstash DLQ: {bound}{qstash.dlq_size} messages"
    parts: list[RenderableType] = [table] if qstash.queues else []
    parts.append(Text(f"qstash queues: {len(qstash.queues)}, total lag {qstash.total_lag}"))
    parts.append(Text(dlq))
    return Group(*parts)


@app.command("sync")
def sync(
    url: Annotated[
        str | None,
        typer.Option(
            help="the app's base URL (default: INTERNAL_API_URL, else http://127.0.0.1:8000)"
        ),
    ] = None,
) -> None:
    """Register the app's functions with Inngest (PUT /api/inngest); exit 1 if it failed."""
    settings = settings_or_exit()
    if url is not None and not url.startswith(("http://", "https://")):
        raise typer.BadParameter("must be an http:// or https:// URL", param_hint="--url")
    target = sync_url(settings, url)
    with console().status(f"syncing {target} (Inngest may take up to 30 s to answer)"):
        key = settings.inngest_signing_key
        result = sync_app(target, key.get_secret_value() if key is not None else None)
    if not result.ok:
        # The SDK answers 200 even when Inngest refused the registration: say it loudly.
        fail(f"sync failed: {result.error}")
    count = (
        f": {result.function_count} functions registered"
        if result.function_count is not None
        else ""
    )
    say(f"synced {target}{count}")


@app.command("status")
def status(
    watch: Annotated[
        float | None,
        typer.Option(help="refresh every SECONDS until Ctrl-C", metavar="SECONDS", min=0.5),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="seconds to wait for each service", min=0.1, max=60)
    ] = 2.0,
) -> None:
    """Provider chain, reachability and latency of each service, workers, pending work.

    Exits 1 when a required service is down: the database, the broker, and Inngest or
    QStash when configured.
    """
    settings = settings_or_exit()
    if watch is None:
        once = collect_status(settings, loaded_app().audit, timeout=timeout)
        console().print(_render_status(once))
        if not once.healthy:
            raise typer.Exit(1)
        return

    audit_of_app = loaded_app().audit
    reports = every(watch, lambda: collect_status(settings, audit_of_app, timeout=timeout))
    report: StatusReport | None = None
    shown = console()
    try:
        report = next(reports)
        if shown.is_terminal:
            with Live(_render_status(report), console=shown, auto_refresh=False) as live:
                for fresh in reports:
                    report = fresh
                    live.update(_render_status(fresh), refresh=True)
        else:  # a file or a pipe: each report as it comes (Live writes only the last)
            shown.print(_render_status(report))
            for report in reports:  # the last one decides the exit status
                shown.print(_render_status(report))
    except KeyboardInterrupt:
        pass
    if report is None:
        raise typer.Exit(130)  # interrupted before the first report: the shell's convention
    raise typer.Exit(0 if report.healthy else 1)


_STATE_STYLE = {"up": "green", "DOWN": "bold red", "warning": "yellow", "not configured": "dim"}


def _render_status(report: StatusReport) -> RenderableType:
    table = Table(title=f"jobbridge status at {report.checked_at:%Y-%m-%d %H:%M:%S} UTC")
    for column in ("service", "state", "latency", "detail"):
        table.add_column(column, overflow="fold")  # a detail cut short names nothing
    for check in report.checks:
        latency = f"{check.latency_ms:.1f} ms" if check.latency_ms is not None else "-"
        state = Text(check.state, style=_STATE_STYLE[check.state])
        table.add_row(check.name, state, latency, Text(check.detail))
    lines: list[RenderableType] = [Text(_chain_line(report.chain)), table]
    if report.audit is not None:
        lines.append(Text(_audit_line(report.audit, report.counted)))
    if report.qstash is not None:
        paused = [q.name for q in report.qstash.queues if q.paused]
        lines.append(
            Text(
                f"qstash queue lag: {report.qstash.total_lag} across "
                f"{len(report.qstash.queues)} queues"
                + (f" (paused: {', '.join(paused)})" if paused else "")
            )
        )
    if report.down:
        lines.append(Text(f"DOWN (required): {', '.join(report.down)}", style="bold red"))
    return Group(*lines)


def _chain_line(chain: ProviderChain) -> str:
    order = " -> ".join(provider.value for provider in chain.providers)
    unused = [link.provider.value for link in chain.links if not link.used]
    failover = "failover on" if chain.failover else "failover off"
    return f"provider chain: {order} ({failover}; not used: {', '.join(unused) or 'none'})"


def _audit_line(audit: AppAudit, counted: AuditResult | None) -> str:
    if counted is None:
        return f"pending {audit.title}: unknown (database down)"
    return counted.summary()
