"""The score-over-time chart has a time axis: points sit at their timestamps, not evenly spaced."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from core.charts import time_chart
from ingest.models import Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring.services import lead_score

DOT = re.compile(r'<circle cx="([0-9.]+)" cy="[0-9.]+" r="[0-9.]+" class="dot')


def dot_xs(svg: str) -> list[float]:
    return [float(x) for x in DOT.findall(svg)]


def assert_follows(xs: list[float], seconds: list[float]) -> None:
    """Each dot's x is where its timestamp falls between the first and the last."""
    assert len(xs) == len(seconds)
    span_x, span_t = xs[-1] - xs[0], seconds[-1] - seconds[0]
    assert span_x > 0
    for x, t in zip(xs, seconds, strict=True):
        assert x - xs[0] == pytest.approx((t - seconds[0]) / span_t * span_x, abs=0.5)


def test_points_sit_at_their_timestamps():
    start = datetime(2026, 3, 1, 9, tzinfo=UTC)
    seconds = [0, 10, 20, 30, 40, 50, 3600]  # six in a minute, then one an hour later
    svg = time_chart(points=[(start + timedelta(seconds=s), 5 * i) for i, s in enumerate(seconds)], title="Score",
                     nonce="n0nce")  # fmt: skip

    xs = dot_xs(svg)
    assert_follows(xs, seconds)
    # the six of the first minute take under 2 % of the width, not half of it
    assert (xs[5] - xs[0]) / (xs[-1] - xs[0]) < 0.02
    assert "<script" not in svg and 'nonce="n0nce"' in svg


def test_the_axis_runs_until_now_when_asked():
    start = datetime(2026, 3, 1, 9, tzinfo=UTC)
    points = [(start, 5), (start + timedelta(seconds=60), 35)]  # both within the first minute of an hour

    xs = dot_xs(time_chart(points=points, title="Score", nonce="n", until=start + timedelta(hours=1)))
    alone = dot_xs(time_chart(points=points, title="Score", nonce="n"))

    # a minute of an hour-long axis (the plot width moves a little with the labels)
    assert (xs[1] - xs[0]) / (alone[1] - alone[0]) == pytest.approx(1 / 60, rel=0.05)


@pytest.mark.django_db
def test_the_lead_pages_chart_uses_the_time_axis(tenant):
    now = timezone.now()
    seconds = [0, 5, 10, 15, 7200]
    events_ingest(
        project_id=tenant.project.id,
        events=[
            CanonicalEvent(
                event_id=f"e{i}", name="page_view", anonymous_id="pat", timestamp=now - timedelta(seconds=7200 - s)
            )
            for i, s in enumerate(seconds)
        ],
    )
    lead = lead_score(lead_id=Lead.objects.get(project=tenant.project, anonymous_id="pat").id)
    client = Client()
    client.force_login(tenant.owner)

    html = client.get(f"/leads/{lead.id}/").content.decode()

    chart = html[html.index('id="chart-score"') :]
    assert_follows(dot_xs(chart[: chart.index("</svg>")]), seconds)


def test_the_line_holds_each_score_until_the_next_change():
    start = datetime(2026, 3, 1, 9, tzinfo=UTC)
    points = [(start, 10), (start + timedelta(minutes=30), 40), (start + timedelta(minutes=60), 20)]
    svg = time_chart(points=points, title="Score", nonce="n", until=start + timedelta(minutes=90))

    # the line's vertices: flat runs joined by vertical moves at each change, on to `until`
    line = re.search(r'<path d="M([^"]+)" class="line reactive', svg).group(1)
    vertices = [tuple(float(n) for n in pair.split(" ")) for pair in re.findall(r"[0-9.]+ [0-9.]+", line)]
    xs, ys = [x for x, _ in vertices], [y for _, y in vertices]
    assert len(vertices) == 6
    assert ys[0] == ys[1] and xs[1] == xs[2] and ys[2] == ys[3] and xs[3] == xs[4] and ys[4] == ys[5]
    assert ys[2] < ys[0] and ys[4] > ys[2]  # up to 40, then down to 20 (SVG's y grows downwards)
    assert len(dot_xs(svg)) == 3  # a dot per real point, none at the steps' corners
