"""The lead change crosses apps as one message shape: written and read only by `LeadChange`."""

import pytest

from core.contracts import LeadChange

SCORED = {
    "kind": "scored", "projectId": 3, "leadId": 7, "oldScore": 20, "newScore": 45, "oldStage": "warm",
    "newStage": "hot", "velocity": 4, "eventIds": [11, 12], "path": [[20, "warm"], [35, "hot"], [45, "hot"]],
}  # fmt: skip


def test_a_scored_change_travels_as_the_documented_message_and_back():
    change = LeadChange.from_message(SCORED)
    assert change.path == ((20, "warm"), (35, "hot"), (45, "hot")) and change.event_ids == (11, 12)
    assert change.to_message() == SCORED  # no merge fields, no change id until one is given
    assert LeadChange.from_message(change.with_id("c1").to_message()) == change  # the id is not part of equality
    assert change.with_id("c1").to_message()["changeId"] == "c1"


def test_a_merge_carries_the_merged_lead():
    merged = LeadChange(kind="merged", project_id=3, lead_id=7, old_score=5, new_score=5, old_stage="cold",
                        new_stage="cold", merged_lead_id=9, merged_anonymous_id="anon-9")  # fmt: skip
    message = merged.to_message()
    assert (message["mergedLeadId"], message["mergedAnonymousId"]) == (9, "anon-9")
    assert LeadChange.from_message(message) == merged


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ((), [((20, "warm"), (45, "hot"))]),  # no path: old -> new
        (((20, "warm"), (35, "hot"), (25, "warm")), [((20, "warm"), (35, "hot")), ((35, "hot"), (25, "warm"))]),
    ],
)
def test_steps_are_every_move_of_the_path(path, steps):
    change = LeadChange(kind="scored", project_id=1, lead_id=1, old_score=20, new_score=45, old_stage="warm",
                        new_stage="hot", path=path)  # fmt: skip
    assert change.steps() == steps
