import time

import pytest

from automations import engine
from automations.ssrf import UnsafeUrl, url_check
from core.contracts import LeadChange
from scoring.engine import EventFact


def change(path, kind="scored", **extra):
    """A lead change as the automations task receives it (the message), read as the contract reads it."""
    return LeadChange.from_message({"kind": kind, "projectId": 1, "leadId": 1, "oldScore": path[0][0],
                                    "newScore": path[-1][0], "oldStage": path[0][1], "newStage": path[-1][1],
                                    "velocity": 0, "eventIds": [], "path": path, **extra})  # fmt: skip


@pytest.mark.parametrize(
    ("path", "fires"),
    [
        ([[20, "warm"], [35, "hot"]], True),
        ([[0, "cold"], [70, "qualified"]], True),  # straight past hot still "gets hot"
        ([[35, "hot"], [40, "hot"]], False),  # already hot: no transition
        ([[70, "qualified"], [40, "hot"]], False),  # coming down into hot is not "getting hot"
        ([[20, "warm"], [35, "hot"], [25, "warm"], [45, "hot"]], True),
    ],
)
def test_stage_entered_is_a_transition_into_or_past_the_stage(path, fires):
    assert bool(engine.trigger_fires("stage_entered", {"stage": "hot"}, change(path), [])) is fires


def test_entering_cold_means_dropping_into_it():
    assert engine.trigger_fires("stage_entered", {"stage": "cold"}, change([[15, "warm"], [5, "cold"]]), [])
    assert not engine.trigger_fires("stage_entered", {"stage": "cold"}, change([[0, "cold"], [5, "cold"]]), [])


def test_score_crossings_look_at_every_step_of_the_path():
    dip = change([[50, "hot"], [10, "cold"], [55, "hot"]])
    assert engine.trigger_fires("score_crossed_down", {"threshold": 20}, dip, [])
    assert engine.trigger_fires("score_crossed_up", {"threshold": 20}, dip, [])
    assert not engine.trigger_fires("score_crossed_up", {"threshold": 60}, dip, [])


def test_event_received_with_property_conditions():
    from datetime import UTC, datetime

    events = [EventFact("e1", "page_view", datetime.now(UTC), {"url": "/pricing"})]
    config = {"eventType": "page_view", "conditions": [{"path": "properties.url", "op": "contains", "value": "pric"}]}
    assert engine.trigger_fires("event_received", config, change([[0, "cold"], [5, "cold"]]), events)
    config["conditions"][0]["value"] = "blog"
    assert not engine.trigger_fires("event_received", config, change([[0, "cold"], [5, "cold"]]), events)


def test_velocity_merge_and_identify_triggers():
    fast = change([[0, "cold"], [5, "cold"]], velocity=7)
    assert engine.trigger_fires("velocity_at_least", {"velocity": 5}, fast, [])
    assert not engine.trigger_fires("velocity_at_least", {"velocity": 8}, fast, [])
    assert engine.trigger_fires("lead_merged", {}, change([[5, "cold"]], kind="merged"), [])
    assert not engine.trigger_fires("lead_merged", {}, fast, [])
    assert engine.trigger_fires("lead_identified", {}, change([[5, "cold"]], kind="identified"), [])


def test_lead_conditions():
    lead = {"stage": "hot", "score": 40, "grade": "B", "profile": {"traits": {"plan": "pro"}}}
    assert engine.lead_conditions_hold({}, lead)
    assert engine.lead_conditions_hold({"stages": ["hot"], "minScore": 40, "grades": ["A", "B"]}, lead)
    assert not engine.lead_conditions_hold({"maxScore": 39}, lead)
    assert not engine.lead_conditions_hold({"traits": [{"path": "traits.plan", "op": "eq", "value": "free"}]}, lead)


def test_signatures_verify_and_reject_tampering_and_replays():
    body, now = b'{"a":1}', int(time.time())
    header = engine.signature_header(secret="whsec_x", timestamp=now, body=body)
    assert engine.signature_verify(secret="whsec_x", header=header, body=body, now=now)
    assert not engine.signature_verify(secret="whsec_x", header=header, body=b'{"a":2}', now=now)
    assert not engine.signature_verify(secret="whsec_y", header=header, body=body, now=now)
    assert not engine.signature_verify(secret="whsec_x", header=header, body=body, now=now + 3600)
    assert not engine.signature_verify(secret="whsec_x", header="garbage", body=body, now=now)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8000/",
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://[::1]/",
        "http://[fd00::1]/",
        "http://169.254.169.254/latest/meta-data",
        "http://224.0.0.1/",
        "http://0.0.0.0/",
    ],
)
def test_internal_addresses_are_refused(url):
    with pytest.raises(UnsafeUrl):
        url_check(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/", "http://[fe80::1]/", "http://[::ffff:169.254.169.254]/", "ftp://127.0.0.1/x",
     "file:///etc/passwd", "gopher://127.0.0.1/", "http://user:pw@127.0.0.1/"],
)  # fmt: skip
def test_link_local_and_other_schemes_are_refused_even_when_private_is_allowed(url):
    with pytest.raises(UnsafeUrl):
        url_check(url, allow_private=True)


def test_loopback_is_allowed_only_when_configured():
    assert url_check("http://127.0.0.1:9/x", allow_private=True).address == "127.0.0.1"
    assert url_check("https://8.8.8.8/x", allow_private=False).port == 443


# IPv6 forms that carry an IPv4 address a relay or translator would connect to
EMBEDDED_LOOPBACK = [
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
    "http://[2002:7f00:1::]/",  # 6to4: bits 16-48 are 127.0.0.1
    "http://[2002:7f00:1:0:1:2:3:4]:8080/x",
    "http://[64:ff9b::7f00:1]/",  # NAT64 well-known prefix
    "http://[2001:0:7f00:1::]/",  # Teredo, server 127.0.0.1
]
EMBEDDED_METADATA = [
    "http://[::ffff:169.254.169.254]/",
    "http://[2002:a9fe:a9fe::]/",  # 6to4 of 169.254.169.254
    "http://[2002:a9fe:a9fe:1::1]/latest/meta-data",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2001:0:a9fe:a9fe::]/",  # Teredo server 169.254.169.254
    "http://[2001:0:808:808:0:0:5601:5601]/",  # Teredo client (obfuscated): 169.254.169.254
]


@pytest.mark.parametrize("url", EMBEDDED_LOOPBACK + EMBEDDED_METADATA)
def test_an_ipv4_embedded_in_ipv6_is_vetted_like_the_address_itself(url):
    with pytest.raises(UnsafeUrl, match="embeds"):
        url_check(url, allow_private=False)


@pytest.mark.parametrize("url", EMBEDDED_METADATA)
def test_an_embedded_link_local_address_is_refused_even_when_private_is_allowed(url):
    with pytest.raises(UnsafeUrl, match=r"embeds 169\.254\.169\.254.*link-local"):
        url_check(url, allow_private=True)


def test_6to4_of_a_public_address_is_allowed():
    assert url_check("http://[2002:808:808::1]/", allow_private=False).address == "2002:808:808::1"  # 8.8.8.8
