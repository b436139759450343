"""The overview's chart: signatures per day per project (stacked bars) with the day's
refused signings beside them, as an inline SVG rendered on the server (no script).

Accessible by construction: the SVG is ``role="img"`` with a <title> and a <desc> naming
what it shows and the totals, each bar has a <title> with its numbers, and the overview
page carries the same numbers as a visually hidden table. Colours are SVG presentation
attributes (the CSP forbids inline style), each at least 4.5:1 against the white
background (WCAG AA; tests/unit/test_web_chart.py computes the ratios), and refusals are
also told apart by place (the right bar of each day) and by the legend, not by colour
alone. Every name is escaped: a project name is the caller's text."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from markupsafe import Markup, escape

from signgate.service.views import DayCount

# Project colours in order (and again, for more projects than colours): dark blue, dark
# orange, green, purple, teal, brown; refusals in dark red. All >= 4.5:1 on white.
PALETTE = ("#1f4e79", "#a04a00", "#2e6b30", "#6a3d9a", "#00666e", "#7a5200")
REFUSED = "#b00020"
WIDTH, HEIGHT = 900, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 56  # margins: axis labels left, dates and legend below
LEGEND_ROW = 20


@dataclass(frozen=True)
class Series:
    """Per day (oldest first): signatures per project and refusals in all projects."""

    days: list[date]
    projects: list[str]
    signed: dict[tuple[date, str], int] = field(default_factory=dict)
    refused: dict[date, int] = field(default_factory=dict)

    def signed_on(self, day: date) -> int:
        return sum(self.signed.get((day, p), 0) for p in self.projects)

    @property
    def total_signed(self) -> int:
        return sum(self.signed.values())

    @property
    def total_refused(self) -> int:
        return sum(self.refused.values())


def series(counts: Iterable[DayCount], last_day: date, days: int = 30) -> Series:
    """The ``days`` days up to ``last_day`` (every day, with or without signatures)."""
    window = [last_day - timedelta(days=n) for n in range(days - 1, -1, -1)]
    s = Series(window, [])
    inside = set(window)
    projects: set[str] = set()
    for c in counts:
        if c.day not in inside:
            continue
        if c.signatures:
            s.signed[(c.day, c.project)] = s.signed.get((c.day, c.project), 0) + c.signatures
            projects.add(c.project)
        if c.refusals:
            s.refused[c.day] = s.refused.get(c.day, 0) + c.refusals
    s.projects.extend(sorted(projects))
    return s


def colour(projects: Sequence[str], project: str) -> str:
    return PALETTE[projects.index(project) % len(PALETTE)]


def _nice_max(n: int) -> int:
    """The axis' top: ``n`` rounded up to 1, 2 or 5 times a power of ten (at least 1)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if n <= m * step:
                return m * step
        step *= 10


def svg(s: Series) -> Markup:
    """The chart as SVG markup, to be placed in the page as is."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    legend_rows = 1 + len(s.projects) // 6
    height = TOP + plot_h + 30 + legend_rows * LEGEND_ROW
    top = _nice_max(max([*(s.signed_on(d) for d in s.days), *s.refused.values(), 0]))
    slot = plot_w / max(len(s.days), 1)
    bar = max(slot * 0.4, 1.0)
    base = TOP + plot_h

    def y(value: float) -> float:
        return base - value * plot_h / top

    title = "Signatures per day per project, and refused signings, over the last " \
            f"{len(s.days)} days"
    first, last = (s.days[0], s.days[-1]) if s.days else (None, None)
    desc = (f"{s.total_signed} signatures and {s.total_refused} refused signings from "
            f"{first} to {last} (UTC); the table below the chart has the numbers per day.")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
           f'viewBox="0 0 {WIDTH} {height}" width="100%" '
           f'aria-labelledby="chart-title chart-desc">',
           f'<title id="chart-title">{escape(title)}</title>',
           f'<desc id="chart-desc">{escape(desc)}</desc>']
    # Axis and grid: 0, half and the top, the dates every 7 days from the last one.
    for value in (0, top / 2, top):
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" '
                   f'y2="{y(value):.1f}" stroke="#767676" stroke-width="1"/>')
        label = f"{value:g}"
        out.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" '
                   f'font-size="12" fill="#1a1a1a">{label}</text>')
    for i, day in enumerate(s.days):
        x = LEFT + i * slot
        if (len(s.days) - 1 - i) % 7 == 0:
            out.append(f'<text x="{x + slot / 2:.1f}" y="{base + 16}" text-anchor="middle" '
                       f'font-size="12" fill="#1a1a1a">{day:%m-%d}</text>')
        h = 0.0
        for project in s.projects:
            n = s.signed.get((day, project), 0)
            if not n:
                continue
            height_n = n * plot_h / top
            h += height_n
            out.append(
                f'<rect class="bar" x="{x + slot * 0.1:.1f}" y="{base - h:.1f}" '
                f'width="{bar:.1f}" height="{height_n:.1f}" '
                f'fill="{colour(s.projects, project)}" data-project="{escape(project)}" '
                f'data-count="{n}"><title>{day}: {escape(project)}, {n} '
                f'signature{"" if n == 1 else "s"}</title></rect>')
        r = s.refused.get(day, 0)
        if r:
            out.append(
                f'<rect class="bar refused" x="{x + slot * 0.1 + bar:.1f}" y="{y(r):.1f}" '
                f'width="{bar:.1f}" height="{r * plot_h / top:.1f}" fill="{REFUSED}" '
                f'data-count="{r}"><title>{day}: {r} refused signing{"" if r == 1 else "s"}'
                f'</title></rect>')
    # Legend: one swatch and name per project, then refusals.
    entries = [(colour(s.projects, p), p) for p in s.projects] + [(REFUSED, "refused")]
    for i, (fill, name) in enumerate(entries):
        lx = LEFT + (i % 6) * 140
        ly = base + 30 + (i // 6) * LEGEND_ROW
        out.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{fill}"/>')
        out.append(f'<text x="{lx + 16}" y="{ly + 11}" font-size="12" fill="#1a1a1a">'
                   f'{escape(name[:18])}</text>')
    out.append("</svg>")
    return Markup("\n".join(out))  # noqa: S704 - every caller text above is escape()d
