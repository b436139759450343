"""The overview's SVG chart (web/chart.py): bars proportional to the counts, every day of
the window present (zero days draw no bar), project names escaped, refusals beside the
signatures, and colours that meet WCAG AA against the white page."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

from signgate.service.views import DayCount
from signgate.web import chart

SVG = "{http://www.w3.org/2000/svg}"
TODAY = date(2026, 12, 3)


def bars(markup: str) -> list[ET.Element]:
    root = ET.fromstring(markup)  # noqa: S314 - our own markup: well-formed, or this raises
    return [r for r in root.iter(f"{SVG}rect") if "bar" in r.get("class", "")]


def test_bars_are_proportional_to_the_counts_and_stack_per_day() -> None:
    s = chart.series([DayCount(TODAY, "acme", 10, 0), DayCount(TODAY, "beta", 5, 0),
                      DayCount(TODAY - timedelta(days=1), "acme", 20, 4)], TODAY)
    found = bars(chart.svg(s))
    heights = {(b.get("data-project"), b.get("data-count")): float(b.get("height", 0))
               for b in found}
    assert heights[("acme", "20")] == 2 * heights[("acme", "10")]
    assert heights[("acme", "10")] == 2 * heights[("beta", "5")]
    assert heights[(None, "4")] * 5 == heights[("acme", "20")]  # the refusals' bar
    # today's two projects stack: beta sits on top of acme
    today = [b for b in found if b.get("data-count") in ("10", "5")]
    acme, beta = sorted(today, key=lambda b: b.get("data-project", ""))
    assert float(beta.get("y", 0)) + float(beta.get("height", 0)) == \
        float(acme.get("y", 0))
    # a refusal bar is beside the day's signatures, not on them
    refused = next(b for b in found if "refused" in b.get("class", ""))
    yesterday = next(b for b in found if b.get("data-count") == "20")
    assert float(refused.get("x", 0)) > float(yesterday.get("x", 0))


def test_every_day_is_in_the_window_and_zero_days_draw_nothing() -> None:
    s = chart.series([DayCount(TODAY - timedelta(days=40), "old", 9, 9)], TODAY)
    assert len(s.days) == 30
    assert s.days[-1] == TODAY
    assert s.days[0] == TODAY - timedelta(29)
    assert s.projects == []
    assert s.total_signed == 0
    markup = chart.svg(s)
    assert bars(markup) == []
    assert "0 signatures and 0 refused signings" in markup
    dates = re.findall(r">(\d\d-\d\d)</text>", markup)
    assert dates[-1] == "12-03"
    assert len(dates) == 5


def test_project_names_are_escaped() -> None:
    evil = '<script>alert("x")</script>&'
    markup = chart.svg(chart.series([DayCount(TODAY, evil, 3, 0)], TODAY))
    assert "<script>" not in markup
    assert "&lt;script&gt;" in markup
    [bar] = bars(markup)
    assert bar.get("data-project") == evil  # the XML parser undoes the escaping
    assert ET.fromstring(markup).find(f"{SVG}title") is not None  # noqa: S314


def _luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def test_colours_meet_wcag_aa_on_white() -> None:
    for colour in (*chart.PALETTE, chart.REFUSED, "#1a1a1a", "#767676"):
        ratio = 1.05 / (_luminance(colour) + 0.05)
        assert ratio >= 4.5, (colour, ratio)
