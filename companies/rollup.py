"""The company score: member results rolled up, pure (no ORM).

For one scoring model, a company scores

    top    = the sum of its `top_n` best members' scores (default 3)
    breadth = `breadth_points` per engaged member, at most `breadth_cap` of them: engaged means
             a score at or above the model's warm threshold and active in the last `window_days`
    fit    = the points of company-level fit rules (`scoring.contracts.Rule`, conditions on the
             company's traits: `industry`, `employees`, `plan` …), each applying once

    score = clamp(top + breadth + fit, 0, model's max score)

and its stage is `stage_for(score)` under the company's own thresholds when the configuration
gives them, else under the model's. The result is a function of the set of members: their
order, and the order they arrived in, do not matter; a member removed is as if never there;
raising any member's score never lowers the company's. Each member's contribution is kept,
so `mover` can say which member moved a company between two results.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from scoring.contracts import Policy, Rule, compile_condition, fit_score, stage_for


class Member(NamedTuple):
    """One member lead's result under the model: its score and when it was last active.

    A tuple, not a dataclass: a recompute builds one per member per model, thousands a batch.
    """

    lead_id: int
    score: int
    active_at: datetime | None = None


@dataclass(frozen=True)
class RollupConfig:
    top_n: int = 3
    breadth_points: int = 10
    breadth_cap: int = 5
    window_days: int = 30
    fit_rules: tuple[Rule, ...] = ()
    thresholds: Policy | None = None  # the company's own stage thresholds; None: the model's


@dataclass(frozen=True)
class CompanyResult:
    score: int
    stage: str
    top: int
    breadth: int
    fit: int
    engaged: int  # engaged members, before the cap
    fit_applied: tuple[tuple[int, int], ...] = ()
    contributions: dict[int, int] = field(default_factory=dict)  # lead id -> points (top + breadth)
    moved_by: int | None = None  # the member whose contribution changed most since the previous result

    def to_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "stage": self.stage,
            "top": self.top,
            "breadth": self.breadth,
            "fit": self.fit,
            "engaged": self.engaged,
            "fitApplied": [list(applied) for applied in self.fit_applied],
            "contributions": {str(lead_id): points for lead_id, points in sorted(self.contributions.items())},
            "movedBy": self.moved_by,
        }


def _best_first(member: Member) -> tuple[int, int]:
    return (-member.score, member.lead_id)


def company_rollup(
    members: Iterable[Member], *, traits: dict[str, Any], policy: Policy, now: datetime, config: RollupConfig
) -> CompanyResult:
    """The company's score and stage under one model from its members' results (see the module)."""
    ranked = sorted(members, key=_best_first)
    if len({member.lead_id for member in ranked}) != len(ranked):
        raise ValueError("a lead is a member once")
    contributions = {member.lead_id: 0 for member in ranked}
    top_members = ranked[: max(config.top_n, 0)]
    for member in top_members:
        contributions[member.lead_id] += member.score
    since = now - timedelta(days=config.window_days)
    engaged = [
        m for m in ranked if m.score >= policy.warm_threshold and m.active_at is not None and m.active_at >= since
    ]
    counted = engaged[: max(config.breadth_cap, 0)]
    for member in counted:
        contributions[member.lead_id] += config.breadth_points
    top = sum(member.score for member in top_members)
    breadth = len(counted) * config.breadth_points
    fit, fit_applied = fit_score(traits, config.fit_rules)
    score = min(max(top + breadth + fit, 0), policy.max_score)
    return CompanyResult(
        score=score,
        stage=stage_for(score, config.thresholds or policy),
        top=top,
        breadth=breadth,
        fit=fit,
        engaged=len(engaged),
        fit_applied=tuple(fit_applied),
        contributions=contributions,
    )


def company_moved(result: CompanyResult, *, previous: dict[int, int]) -> CompanyResult:
    """The result, saying which member's contribution changed most since `previous` (ties: lowest lead id)."""
    leads = set(result.contributions) | set(previous)
    changes = {lead_id: abs(result.contributions.get(lead_id, 0) - previous.get(lead_id, 0)) for lead_id in leads}
    moved = [lead_id for lead_id in sorted(changes) if changes[lead_id]]
    moved_by = max(moved, key=lambda lead_id: (changes[lead_id], -lead_id)) if moved else None
    # built field by field: `dataclasses.replace` walks the fields, three times the cost, once per company written
    return CompanyResult(result.score, result.stage, result.top, result.breadth, result.fit, result.engaged,
                         result.fit_applied, result.contributions, moved_by)  # fmt: skip


def contributions_from_json(document: dict[str, Any]) -> dict[int, int]:
    """The contributions of a stored result (`CompanyResult.to_json`)."""
    raw = document.get("contributions") if isinstance(document, dict) else None
    return {int(lead_id): int(points) for lead_id, points in (raw or {}).items()}


def rollup_config(
    *,
    top_n: int = 3,
    breadth_points: int = 10,
    breadth_cap: int = 5,
    window_days: int = 30,
    fit_rules: Iterable[dict[str, Any]] = (),
    thresholds: tuple[int, int, int] | None = None,
) -> RollupConfig:
    """A configuration from stored settings: fit rules as `{"name", "points", "conditions"}` (validated
    conditions), numbered from 1 in their order; thresholds as (warm, hot, qualified)."""
    rules = tuple(
        Rule(id=index, event_type="*", points=int(rule["points"]), name=str(rule.get("name", "")),
             conditions=tuple(compile_condition(condition) for condition in rule.get("conditions", ())))
        for index, rule in enumerate(fit_rules, start=1)
    )  # fmt: skip
    policy = None
    if thresholds is not None:
        warm, hot, qualified = thresholds
        policy = Policy(warm_threshold=warm, hot_threshold=hot, qualified_threshold=qualified)
    return RollupConfig(top_n=top_n, breadth_points=breadth_points, breadth_cap=breadth_cap, window_days=window_days,
                        fit_rules=rules, thresholds=policy)  # fmt: skip
