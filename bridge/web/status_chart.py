"""The status page's chart: counts per minute by key as stacked bars, in inline SVG.

No script and no external file: the SVG scales to the page's width (its viewBox), the
axes are labelled (count per minute, time in UTC), and the legend beside it is HTML,
so it wraps on a phone. Every text is escaped.
"""

from __future__ import annotations

from html import escape

from bridge.activity import MinuteSeries

WIDTH, HEIGHT = 560, 270
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 30, 44  # room for the axes' labels
FONT = 16
# One colour per provider, told apart by people with the common colour-vision
# deficiencies (orange against blue); others take the spares in order.
COLOURS = {
    "qstash": "#e07b00",
    "inngest": "#3355cc",
    "celery": "#2e9e5b",
    "http": "#8a5cc2",
    "unrecorded": "#9a9a9a",
}
SPARES = ("#c23b5a", "#1f9bb5", "#6b6b00", "#555555")
ORDER = tuple(COLOURS)  # stacked from the bottom: QStash first, as it drains


def colours(keys: list[str]) -> dict[str, str]:
    spares = iter(SPARES * (1 + len(keys) // len(SPARES)))
    return {key: COLOURS.get(key) or next(spares) for key in keys}


def ordered(series: MinuteSeries) -> list[str]:
    known = [key for key in ORDER if key in series.counts]
    return known + sorted(set(series.counts) - set(known))


def nice_ceiling(value: int) -> int:
    """The axis' top: 1, 2 or 5 times a power of ten, at or above `value` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _x_ticks(series: MinuteSeries) -> list[int]:
    """Minute indexes to label: every 30 minutes on the clock (every 10 when short)."""
    every = 30 if series.minutes > 90 else 10
    return [
        index
        for index in range(series.minutes)
        if (series.minute(index).hour * 60 + series.minute(index).minute) % every == 0
    ]


def render_chart(series: MinuteSeries) -> str:
    keys = ordered(series)
    colour = colours(keys)
    totals = [sum(series.counts[key][i] for key in keys) for i in range(series.minutes)]
    top = nice_ceiling(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bar_w = plot_w / max(series.minutes, 1)
    base_y = TOP + plot_h

    def y_of(count: float) -> float:
        return base_y - count / top * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart-title">',
        f'<title id="chart-title">{escape(series.title)}</title>',
    ]
    for tick in (0, top / 2, top) if top > 1 else (0, top):
        y = _num(y_of(tick))
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle" font-size="{FONT}">{_num(tick)}</text>'
        )
    for index in range(series.minutes):
        height_so_far = 0
        x = _num(LEFT + index * bar_w)
        for key in keys:
            count = series.counts[key][index]
            if not count:
                continue
            y_top, y_bottom = y_of(height_so_far + count), y_of(height_so_far)
            height_so_far += count
            parts.append(
                f'<rect x="{x}" y="{_num(y_top)}" width="{_num(bar_w)}" '
                f'height="{_num(y_bottom - y_top)}" fill="{colour[key]}"/>'
            )
    for index in _x_ticks(series):
        x = _num(LEFT + index * bar_w)
        parts.append(
            f'<line class="axis" x1="{x}" y1="{base_y}" x2="{x}" y2="{base_y + 5}"/>'
            f'<text class="tick" x="{x}" y="{base_y + 8 + FONT}" text-anchor="middle" '
            f'font-size="{FONT}">{series.minute(index):%H:%M}</text>'
        )
    parts.append(
        f'<line class="axis" x1="{LEFT}" y1="{base_y}" x2="{WIDTH - RIGHT}" y2="{base_y}"/>'
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base_y}"/>'
        f'<text class="label" x="{WIDTH - RIGHT}" y="{HEIGHT - 2}" text-anchor="end" '
        f'font-size="{FONT}">time (UTC)</text>'
        f'<text class="label" x="{LEFT - 6}" y="{TOP - 12}" font-size="{FONT}">'
        "per minute</text>"
    )
    if not keys:
        parts.append(
            f'<text class="label" x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" '
            f'text-anchor="middle" font-size="{FONT}">none in this time</text>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch" style="background:{colour[key]}"></span>'
        f"{escape(key)}: {series.total(key)}</li>"
        for key in keys
    )
    return "".join(parts) + (f'<ul class="legend">{legend}</ul>' if legend else "")
