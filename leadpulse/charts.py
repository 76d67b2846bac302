"""Server-rendered SVG charts (pygal): no front-end library, no network at view time."""

from collections.abc import Sequence

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
OPTIONS = {"style": STYLE, "js": [], "disable_xml_declaration": True, "show_legend": False, "height": 260}


def bar_chart(*, labels: Sequence[str], values: Sequence[float], title: str, every: int = 1, width: int = 800) -> str:
    chart = pygal.Bar(**OPTIONS, width=width, x_label_rotation=45, show_minor_x_labels=False)
    chart.title = title
    chart.x_labels = labels
    chart.x_labels_major = list(labels[::every])
    chart.add(title, list(values))
    return chart.render(is_unicode=True)


def line_chart(*, labels: Sequence[str], values: Sequence[float], title: str) -> str:
    chart = pygal.Line(**OPTIONS, x_label_rotation=45, show_minor_x_labels=False, dots_size=2)
    chart.title = title
    chart.x_labels = labels
    chart.x_labels_major = list(labels[:: max(1, len(labels) // 8)])
    chart.add(title, list(values))
    return chart.render(is_unicode=True)
