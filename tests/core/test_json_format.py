"""Documents in pages show as JSON (escaped like any text), never as Python reprs."""

import json

import pytest
from django.template import Context, Template
from django.test import Client
from django.utils import timezone

from ingest.models import Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest


def render(source: str, **context) -> str:
    return Template("{% load json_format %}" + source).render(Context(context))


def test_properties_render_as_indented_escaped_json():
    html = render("{{ p|json_pretty }}", p={"url": "/pricing?a=1&b=2", "tags": ["<b>", True, None], "n": 1.5})

    assert html == (
        "{\n  &quot;url&quot;: &quot;/pricing?a=1&amp;b=2&quot;,\n"
        "  &quot;tags&quot;: [\n    &quot;&lt;b&gt;&quot;,\n    true,\n    null\n  ],\n  &quot;n&quot;: 1.5\n}"
    )
    assert "'url'" not in html and "True" not in html and "None" not in html


def test_compact_json_and_text_values():
    assert render("{{ v|json_compact }}", v=["pro", "team"]) == "[&quot;pro&quot;, &quot;team&quot;]"
    assert render("{{ v|json_text }}", v="plain text") == "plain text"
    assert render("{{ v|json_text }}", v={"size": 50}) == "{&quot;size&quot;: 50}"
    assert render("{{ v|json_compact }}", v="é") == "&quot;é&quot;"


@pytest.mark.django_db
def test_the_lead_timeline_and_the_events_page_show_properties_as_json(tenant):
    events_ingest(
        project_id=tenant.project.id,
        events=[
            CanonicalEvent(event_id="e1", name="page_view", anonymous_id="pat", timestamp=timezone.now(),
                           properties={"url": "/pricing", "utm": {"source": "<ads>"}, "trial": False})
        ],
    )  # fmt: skip
    lead = Lead.objects.get(project=tenant.project, anonymous_id="pat")
    Lead.objects.filter(pk=lead.pk).update(traits={"plan": "pro", "company": {"size": 50}})
    client = Client()
    client.force_login(tenant.owner)
    pretty = (
        "{\n  &quot;url&quot;: &quot;/pricing&quot;,\n  &quot;utm&quot;: {\n    &quot;source&quot;: "
        "&quot;&lt;ads&gt;&quot;\n  },\n  &quot;trial&quot;: false\n}"
    )

    for url in (f"/leads/{lead.id}/", "/events/"):
        html = client.get(url).content.decode()
        assert f'<pre class="json small" data-properties>{pretty}</pre>' in html, url
        assert "{&#x27;url&#x27;" not in html and "False" not in html, url
    traits = client.get(f"/leads/{lead.id}/").content.decode()
    assert "<th>company</th><td>{&quot;size&quot;: 50}</td>" in traits and "<td>pro</td>" in traits


@pytest.mark.django_db
def test_a_version_diff_shows_changed_conditions_as_json(tenant):
    from tests.scoring.test_pages import rule_post
    from tests.scoring.test_version_pages import page_view_rule

    client = Client()
    client.force_login(tenant.owner)
    rule = page_view_rule(tenant.project)
    conditions = [{"path": "properties.plan", "op": "in", "value": ["pro", "team"]}]
    client.post(
        f"/rules/{rule.id}/", rule_post(name="Page view", points="5", maxPerLead="", conditions=json.dumps(conditions))
    )

    lines = client.get("/models/default/versions/?number=2").context["diff"]["lines"]

    assert lines["changed"] == [
        'Page view: conditions [] → [{"op": "in", "path": "properties.plan", "value": ["pro", "team"]}]'
    ]
