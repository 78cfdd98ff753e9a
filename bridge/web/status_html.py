"""The `/status` page as one HTML document: inline CSS and SVG, no script, no external
URL, refreshing itself every REFRESH_SECONDS, readable on a phone (wide tables scroll
inside their box, long words wrap). Every value is escaped: error texts come from the
database and from QStash.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape

from bridge.activity import RowTable
from bridge.ops.probes import Check
from bridge.ops.status_board import Board
from bridge.qstash.drain import FINAL_STATES
from bridge.web.status_chart import render_chart

REFRESH_SECONDS = 30
SWEEP_EVERY = "the sweep runs every minute"
SWEEP_STALE = 300  # seconds: as deploy/alerts.yml's JobbridgeSweepNotRunning
STYLE = """
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
body{margin:0;background:#f4f5f7;color:#1d1f23;line-height:1.4}
main{max-width:960px;margin:0 auto;padding:12px}
h1{font-size:1.4rem;margin:.2rem 0}
h2{font-size:1.05rem;margin:0 0 .5rem}
section{background:#fff;border:1px solid #dde0e5;border-radius:8px;padding:12px;margin:12px 0}
.meta{color:#5a5f69;font-size:.9rem;margin:0}
.verdict{border-width:2px}
.verdict.yes{border-color:#2e9e5b;background:#eefaf2}
.verdict.no{border-color:#c23b3b;background:#fdf0f0}
.verdict .line{font-weight:600;font-size:1.05rem;margin:0}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #eceef1;vertical-align:top}
td{overflow-wrap:break-word}
td.n,th.n{text-align:right}th.n{white-space:nowrap}
.up{color:#1d7a45;font-weight:600}.down{color:#b42323;font-weight:600}
.off{color:#5a5f69}.warn{color:#9a6200;font-weight:600}
figure{margin:0;max-width:720px}.chart{width:100%;height:auto;display:block}
.chart rect{shape-rendering:crispEdges}
.chart .grid{stroke:#e6e8eb}.chart .axis{stroke:#6b7078}
.chart text{fill:#3b3f46}
.legend{list-style:none;padding:0;margin:.4rem 0 0;display:flex;flex-wrap:wrap;gap:.3rem 1rem}
.swatch{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.3rem;
vertical-align:-1px}
.unknown,.stale{color:#b42323}.stale{font-weight:600}
@media (max-width:640px){
.cards tr:first-child{display:none}
.cards tr{display:block;border-bottom:1px solid #dde0e5;padding:4px 0}
.cards td{display:block;border:0;padding:1px 0;text-align:left}
.cards td::before{content:attr(data-label) ": ";color:#5a5f69}
}
"""


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def _when(value: datetime | None) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if value is not None else "-"


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    numeric: int = 0,
    *,
    cards: bool = False,
    raw: bool = False,
) -> str:
    """A table whose last `numeric` columns are numbers (right-aligned). With `cards`, a
    narrow screen shows each row as a block of "column: value" lines. With `raw`, the
    cells are HTML already escaped by the caller."""
    first = len(headers) - numeric

    def cell(tag: str, index: int, value: object) -> str:
        css = ' class="n"' if index >= first else ""
        label = f' data-label="{esc(headers[index])}"' if tag == "td" else ""
        text = str(value) if raw and tag == "td" else esc(value)
        return f"<{tag}{css}{label}>{text}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    css = ' class="cards"' if cards else ""
    return f'<div class="scroll"><table{css}><tr>{head}</tr>{body}</table></div>'


def _state(check: Check) -> str:
    css = {"up": "up", "DOWN": "down", "warning": "warn"}.get(check.state, "off")
    return f'<span class="{css}">{esc(check.state)}</span>'


def _unknown(why: str) -> str:
    return f'<p class="unknown">unknown: {esc(why)}</p>'


def verdict_section(board: Board) -> str:
    """One line, every reason in it (the JSON lists them one by one too)."""
    verdict = board.verdict
    css = {"yes": "yes", "no": "no"}.get(verdict.answer, "")
    return (
        f'<section id="verdict" class="verdict {css}">'
        f'<p class="line">{esc(verdict.line)}</p></section>'
    )


def chain_section(board: Board) -> str:
    rows = []
    for link in board.chain.links:
        name = link.provider.value
        order = board.chain.providers.index(link.provider) + 1 if link.used else "-"
        check = board.service_of(name)
        service = f"{_state(check)} {esc(check.detail)}" if check else "-"
        used = "yes" if link.used else "no"
        rows.append((esc(order), esc(name), used, esc(link.reason), service))
    database = board.app.check
    failover = "on" if board.chain.failover else "off"
    headers = ("#", "provider", "publishes", "why", "service")
    return (
        "<section><h2>Provider chain</h2>"
        f'<p class="meta">publishing goes to the first; JOB_FAILOVER is {failover}</p>'
        + _table(headers, rows, cards=True, raw=True)
        + f'<p class="meta">database: {_state(database)} {esc(database.detail)}</p>'
        "</section>"
    )


def holdings_section(board: Board) -> str:
    parts = ["<section><h2>What each provider still holds</h2>"]
    counted, title = board.app.counted, board.audit_title
    if title is not None:
        if counted is None:
            parts.append(_unknown(f"{title} pending: {board.app.error or 'no answer'}"))
        else:
            pending = sorted(counted.pending_by_provider.items())
            parts.append(
                _table(
                    [f"{title} pending, by the provider they were published to", "count"],
                    pending or [("none pending", 0)],
                    numeric=1,
                )
            )
    qstash = board.qstash
    if not qstash.configured:
        parts.append(f'<p class="meta">QStash: {esc(qstash.error)}</p>')
    elif qstash.error is not None:
        parts.append(_unknown(f"QStash: {qstash.error}"))
    else:
        states = qstash.states()
        since = _when(qstash.since)
        partial = f" (logs read in part: {qstash.logs_partial})" if qstash.logs_partial else ""
        parts.append(
            f'<p class="meta">QStash messages for this app since {esc(since)}, by latest '
            f"state{esc(partial)}; {esc(qstash.other_messages)} to other URLs</p>"
        )
        rows = [
            (state, "ended" if state in FINAL_STATES else "still held", qstash.by_state[state])
            for state in states
        ]
        parts.append(_table(["QStash messages by state", "", "count"], rows, numeric=1))
        more = "+" if qstash.dlq_is_lower_bound else ""
        parts.append(
            _table(
                ["QStash dead-letter queue", "count"],
                [
                    ("for this app", f"{qstash.dlq_for_app}{more}"),
                    ("in all", f"{qstash.dlq_total}{more}"),
                ],
                numeric=1,
            )
        )
    if board.app.deferred_jobs is not None:
        parts.append(
            f'<p class="meta">Celery: {esc(board.app.deferred_jobs)} jobs deferred in the '
            "database (due beyond the ETA horizon)</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def activity_section(board: Board) -> str:
    activity = board.app.activity
    if activity is None:
        if board.audit_title is None:
            return ""
        return f"<section><h2>Recent work</h2>{_unknown(board.app.error or 'no answer')}</section>"
    series = activity.series
    chart = (
        f"<section><h2>{esc(series.title)}</h2>"
        f'<p class="meta">the last {esc(board.hours)} hours</p><figure>'
        f"{render_chart(series)}</figure></section>"
    )
    return chart + "".join(_rows_section(table) for table in activity.tables)


def _rows_section(table: RowTable) -> str:
    if not table.rows:
        body = f'<p class="meta">{esc(table.empty)}</p>'
    else:
        shown = f" (the first {len(table.rows)})" if table.total > len(table.rows) else ""
        body = f'<p class="meta">{esc(table.total)} in all{esc(shown)}</p>' + _table(
            table.columns, table.rows, cards=True
        )
    return f"<section><h2>{esc(table.title)}</h2>{body}</section>"


def sweep_section(board: Board) -> str:
    """The last sweep: it runs every minute, so one older than SWEEP_STALE is shown as
    stale (the alert JobbridgeSweepNotRunning uses the same 5 minutes)."""
    if board.last_sweep is None:
        if board.metrics_shared:
            swept = f'<p class="meta">no sweep recorded yet ({SWEEP_EVERY})</p>'
        else:
            swept = _unknown(
                f"no sweep recorded by this process ({SWEEP_EVERY} where its cron fires; "
                "set PROMETHEUS_MULTIPROC_DIR, shared with the other processes of this "
                "host, to see theirs)"
            )
    else:
        ago = int((board.checked_at - board.last_sweep).total_seconds())
        when = f"last sweep: {esc(_when(board.last_sweep))} ({esc(ago)} s ago)"
        if ago > SWEEP_STALE:
            swept = (
                f'<p class="stale">{when}: stale, older than {SWEEP_STALE // 60} minutes '
                f"({SWEEP_EVERY}): is it running?</p>"
            )
        else:
            swept = f"<p>{when}</p>"
    return f"<section><h2>Sweep</h2>{swept}</section>"


def counts_section(board: Board) -> str:
    counted = board.app.counted
    if counted is None or board.audit_title is None:
        return ""
    return (
        f"<section><h2>{esc(board.audit_title)}: counts</h2>"
        + _table(["", "count"], counted.rows(), numeric=1)
        + "</section>"
    )


def render_page(board: Board) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<link rel="icon" href="data:,">'
        f"<title>jobbridge status</title><style>{STYLE}</style></head><body><main>"
        "<h1>jobbridge status</h1>"
        f'<p class="meta">checked {esc(_when(board.checked_at))}; refreshes every '
        f'{REFRESH_SECONDS} s; <a href="status.json">as JSON</a></p>'
        + verdict_section(board)
        + chain_section(board)
        + holdings_section(board)
        + activity_section(board)
        + sweep_section(board)
        + counts_section(board)
        + "</main></body></html>"
    )
