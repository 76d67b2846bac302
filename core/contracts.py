"""What the apps hand each other through the queue: task names and the lead change, typed here once.

Tasks are sent by name (`celery.current_app.send_task`), so an app never imports another app's
tasks module; the names live here beside the message shapes that cross apps. A `LeadChange` (and a
`CompanyChange`) travels as the camelCase document `to_message` writes (also what webhook subscribers
receive as `change`), and is read back only by `from_message`.
"""

import itertools
from dataclasses import dataclass, field, replace
from typing import Any, Literal

# core: a scoring batch's lead changes for every consumer below, in one message (`core.pipeline.lead_changes`)
LEAD_CHANGES_FANOUT_TASK = "core.lead_changes_fanout_task"
# scoring
LEADS_SCORE_TASK = "scoring.leads_score_task"
LEAD_SCORE_TASK = "scoring.lead_score_task"  # one lead (kept for messages already queued)
RESCORE_TASK = "scoring.rescore_job_run_task"
# automations
LEAD_CHANGED_TASK = "automations.lead_changed_task"
LEAD_CHANGES_TASK = "automations.lead_changes_task"
EXECUTE_TASK = "automations.automation_execute_task"
DELIVER_TASK = "automations.webhook_deliver_task"
REPLAY_TASK = "automations.webhook_replay_task"
COMPANY_CHANGES_TASK = "automations.company_changes_task"
# companies
COMPANY_LEAD_CHANGES_TASK = "companies.lead_changes_task"
# predictions
PREDICTION_LEAD_CHANGES_TASK = "predictions.lead_changes_task"
PREDICTION_MODEL_TRAIN_TASK = "predictions.model_train_task"

ChangeKind = Literal["scored", "merged", "identified"]


@dataclass(frozen=True)
class LeadChange:
    """One committed change of a lead, from scoring to automations and webhook subscribers.

    `path`: the (score, stage) turning points of the scores the lead went through, first the old one
    and last the new one (a run up or down keeps its two ends), so a trigger sees each threshold
    crossed and each stage passed even when a batch folded many events at once.
    """

    kind: ChangeKind
    project_id: int
    lead_id: int
    old_score: int
    new_score: int
    old_stage: str
    new_stage: str
    velocity: int = 0  # the lead's events in the last 24 hours
    event_ids: tuple[int, ...] = ()  # the events folded (at most 500)
    path: tuple[tuple[int, str], ...] = ()
    merged_lead_id: int | None = None  # "merged": the lead merged into this one
    merged_anonymous_id: str | None = None
    model: str = ""  # the key of the scoring model whose score and stage these are
    primary: bool = True  # that model drives the lead's currentScore and leadStage
    change_id: str = field(default="", compare=False)  # given once, as the change is handed over

    def steps(self) -> list[tuple[tuple[int, str], tuple[int, str]]]:
        """Every ((score, stage) before, after) step of the change, however it was batched."""
        path = self.path or ((self.old_score, self.old_stage), (self.new_score, self.new_stage))
        return list(itertools.pairwise(path))

    def with_id(self, change_id: str) -> "LeadChange":
        return replace(self, change_id=change_id)

    def to_message(self) -> dict[str, Any]:
        """The change as it travels (task kwargs) and as webhook subscribers receive it."""
        message: dict[str, Any] = {
            "kind": self.kind,
            "projectId": self.project_id,
            "leadId": self.lead_id,
            "oldScore": self.old_score,
            "newScore": self.new_score,
            "oldStage": self.old_stage,
            "newStage": self.new_stage,
            "velocity": self.velocity,
            "eventIds": list(self.event_ids),
            "path": [[score, stage] for score, stage in self.path],
        }
        if self.merged_lead_id is not None:
            message["mergedLeadId"] = self.merged_lead_id
        if self.merged_anonymous_id is not None:
            message["mergedAnonymousId"] = self.merged_anonymous_id
        if self.model:
            message["model"] = self.model
        if not self.primary:
            message["primary"] = False
        if self.change_id:
            message["changeId"] = self.change_id
        return message

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> "LeadChange":
        return cls(
            kind=message["kind"],
            project_id=int(message["projectId"]),
            lead_id=int(message["leadId"]),
            old_score=int(message["oldScore"]),
            new_score=int(message["newScore"]),
            old_stage=str(message["oldStage"]),
            new_stage=str(message["newStage"]),
            velocity=int(message.get("velocity") or 0),
            event_ids=tuple(int(pk) for pk in message.get("eventIds") or ()),
            path=tuple((int(score), str(stage)) for score, stage in message.get("path") or ()),
            merged_lead_id=message.get("mergedLeadId"),
            merged_anonymous_id=message.get("mergedAnonymousId"),
            model=str(message.get("model") or ""),
            primary=bool(message.get("primary", True)),
            change_id=str(message.get("changeId") or ""),
        )


CompanyChangeReason = Literal["member", "fit", "merge", "settings", "erase"]


@dataclass(frozen=True)
class CompanyChange:
    """One committed change of a company's score or stage under one model, from companies to automations.

    `moved_by`: the member lead whose contribution changed most (None when no member did: fit, settings).
    `name` and `domain` are the company's as the change committed, so payloads name it without a read.
    """

    project_id: int
    company_id: int
    model: str  # the key of the scoring model whose company score and stage these are
    old_score: int
    new_score: int
    old_stage: str
    new_stage: str
    primary: bool = True
    moved_by: int | None = None
    reason: CompanyChangeReason = "member"
    name: str = ""
    domain: str = ""
    change_id: str = field(default="", compare=False)  # given once, as the change is handed over

    def steps(self) -> list[tuple[tuple[int, str], tuple[int, str]]]:
        """The one ((score, stage) before, after) step: a company is recomputed once per batch."""
        return [((self.old_score, self.old_stage), (self.new_score, self.new_stage))]

    def with_id(self, change_id: str) -> "CompanyChange":
        return replace(self, change_id=change_id)

    def to_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "projectId": self.project_id,
            "companyId": self.company_id,
            "model": self.model,
            "primary": self.primary,
            "oldScore": self.old_score,
            "newScore": self.new_score,
            "oldStage": self.old_stage,
            "newStage": self.new_stage,
            "movedBy": self.moved_by,
            "reason": self.reason,
            "name": self.name,
            "domain": self.domain,
        }
        if self.change_id:
            message["changeId"] = self.change_id
        return message

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> "CompanyChange":
        moved_by = message.get("movedBy")
        return cls(
            project_id=int(message["projectId"]),
            company_id=int(message["companyId"]),
            model=str(message["model"]),
            primary=bool(message.get("primary", True)),
            old_score=int(message["oldScore"]),
            new_score=int(message["newScore"]),
            old_stage=str(message["oldStage"]),
            new_stage=str(message["newStage"]),
            moved_by=None if moved_by is None else int(moved_by),
            reason=message.get("reason") or "member",
            name=str(message.get("name") or ""),
            domain=str(message.get("domain") or ""),
            change_id=str(message.get("changeId") or ""),
        )
