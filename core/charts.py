"""Server-rendered SVG charts (pygal): no front-end library, no network at view time.

The pages' Content-Security-Policy allows no inline script and only nonced inline styles, so
each chart takes the request's CSP nonce (`request.csp_nonce`) for its <style> element.
"""

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from itertools import pairwise
from typing import Any

import pygal
from pygal.style import Style

STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#1d2433",
    foreground_strong="#1d2433",
    foreground_subtle="#e6e8ee",
    colors=("#e4572e", "#2a9d5b", "#3d5a80", "#f2a541", "#6c757d"),
    font_family="system-ui, sans-serif",
)
# the time chart's two series (its steps, its dots) are one score: one colour
STEP_STYLE = Style(**{**STYLE.to_dict(), "colors": (STYLE.colors[0], STYLE.colors[0])})
OPTIONS = {"style": STYLE, "js": [], "disable_xml_declaration": True, "show_legend": False, "height": 260}


def _csp_strict(nonce: str) -> Callable[[Any], Any]:
    """A pygal XML filter: nonce the chart's <style>; drop its inline <script> and tooltip.

    pygal always embeds its config as an inline script, and a hidden tooltip (a style
    attribute) that only its pygal.js shows; with `js: []` neither does anything.
    """

    def apply(root):
        for parent in list(root.iter()):
            for child in list(parent):
                if child.tag == "script" or child.get("class") == "tooltip":
                    parent.remove(child)
                elif child.tag == "style":
                    child.set("nonce", nonce)
        return root

    return apply


def bar_chart(
    *, labels: Sequence[str], values: Sequence[float], title: str, nonce: str, every: int = 1, width: int = 800
) -> str:
    chart = pygal.Bar(**OPTIONS, width=width, x_label_rotation=45, show_minor_x_labels=False)
    chart.add_xml_filter(_csp_strict(str(nonce)))
    chart.title = title
    chart.x_labels = labels
    chart.x_labels_major = list(labels[::every])
    chart.add(title, list(values))
    return chart.render(is_unicode=True)


def time_chart(
    *, points: Sequence[tuple[datetime, float]], title: str, nonce: str, until: datetime | None = None
) -> str:
    """A score over a real time axis: each point sits at its timestamp (six events in a minute stay close).

    A score holds between its changes, so the line is drawn as steps (flat until the next point, then up or
    down), with a dot at each point; `until` (now, say) extends the axis, and the last step, past the last point.
    """
    options: dict[str, Any] = {}
    span = 0.0
    if points:
        first, last = min(moment for moment, _ in points), max(moment for moment, _ in points)
        if until is not None:
            last = max(last, until)
            options["xrange"] = (first.timestamp(), last.timestamp())
        span = (last - first).total_seconds()
    # labels as precise as the axis is long: seconds within the hour, dates beyond two days
    label = "%H:%M:%S" if span < 3600 else "%m-%d %H:%M" if span < 2 * 86400 else "%Y-%m-%d"
    chart = pygal.DateTimeLine(
        **{**OPTIONS, "style": STEP_STYLE},
        **options,
        x_label_rotation=45,
        dots_size=2,
        truncate_label=-1,
        x_value_formatter=lambda moment: moment.strftime(label),
    )
    chart.add_xml_filter(_csp_strict(str(nonce)))
    chart.title = title
    ordered = sorted(points, key=lambda point: point[0])
    steps = [step for point, after in pairwise(ordered) for step in (point, (after[0], point[1]))]
    if ordered:
        steps.append(ordered[-1])
        if until is not None and until > ordered[-1][0]:
            steps.append((until, ordered[-1][1]))
    chart.add(title, steps, show_dots=False)
    chart.add(title, list(ordered), stroke=False)
    return chart.render(is_unicode=True)


def bars_chart(
    *, labels: Sequence[str], series: Mapping[str, Sequence[float]], title: str, nonce: str, width: int = 560
) -> str:
    """Several series of bars side by side over the same labels, with a legend (model against rules, say)."""
    chart = pygal.Bar(**{**OPTIONS, "show_legend": True, "legend_at_bottom": True}, width=width)
    chart.add_xml_filter(_csp_strict(str(nonce)))
    chart.title = title
    chart.x_labels = list(labels)
    for name, values in series.items():
        chart.add(name, list(values))
    return chart.render(is_unicode=True)


def xy_chart(*, series: Mapping[str, Sequence[tuple[float, float]]], title: str, nonce: str, width: int = 560) -> str:
    """Lines through (x, y) points on numeric axes, with a legend (a calibration plot against its diagonal, say)."""
    chart = pygal.XY(**{**OPTIONS, "show_legend": True, "legend_at_bottom": True}, width=width, dots_size=3)
    chart.add_xml_filter(_csp_strict(str(nonce)))
    chart.title = title
    for name, points in series.items():
        chart.add(name, [(float(x), float(y)) for x, y in points])
    return chart.render(is_unicode=True)
