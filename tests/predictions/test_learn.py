"""The learning core on synthetic leads with a known signal: it learns, does not leak, explains and suggests."""

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import timedelta
from statistics import median

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from predictions.features import EventRow, LeadFacts, features_compute
from predictions.learn import (
    MIN_LOST,
    MIN_WON,
    CurvePoint,
    Evaluation,
    Example,
    TrainedModel,
    TrainingRefused,
    lead_predict,
    lift_by_decile,
    model_train,
    predict,
    probability,
    stage_rows,
    thresholds_suggest,
)
from predictions.synthetic import SyntheticLead, labels_shuffle, leads_generate
from scoring.engine import EventFact, Policy, Rule, fold
from scoring.services.leads import DEFAULT_RULES
from tests.live import ROOT

LEADS = 3000
POLICY = Policy()
RULES = [Rule(id=i, event_type=event_type, points=points) for i, (event_type, points) in enumerate(DEFAULT_RULES)]
CURRENT_POINTS = dict(DEFAULT_RULES)


def rule_score(lead: SyntheticLead) -> int:
    """The default rules' score of the lead at its outcome time (the engine's fold, decayed up to then)."""
    facts = [
        EventFact(event_id=f"{lead.key}-{i}", name=event.name, timestamp=event.timestamp)
        for i, event in enumerate(lead.events)
        if event.timestamp < lead.at
    ]
    state, _ = fold(facts, rules=RULES, policy=POLICY)
    return state.decayed_to(POLICY.decay, lead.at)


def examples(leads: Sequence[SyntheticLead], *, shift: timedelta = timedelta(0)) -> list[Example]:
    return [
        Example(lead=lead.facts, won=lead.won, at=lead.at + shift, rule_score=rule_score(lead), key=lead.key)
        for lead in leads
    ]


@pytest.fixture(scope="module")
def leads() -> list[SyntheticLead]:
    return leads_generate(LEADS, seed=5)


@pytest.fixture(scope="module")
def model(leads) -> TrainedModel:
    return model_train(examples(leads), current_points=CURRENT_POINTS, target_precision=0.7)


def test_it_learns_the_hidden_signal_and_beats_the_default_rules(leads, model):
    report = model.report
    assert report["train"]["leads"] == 2250 and report["holdout"]["leads"] == 750
    assert report["train"]["last"] <= report["holdout"]["first"]  # split by time
    assert report["model"]["auc"] >= 0.8
    assert report["rules"] is not None
    assert report["model"]["auc"] > report["rules"]["auc"] + 0.03
    # the top tenth is won well above the average, the bottom tenth well below
    # the stored model (pure Python) scores the holdout as the fitted one did
    holdout = sorted(leads, key=lambda lead: (lead.at, lead.key))[-750:]
    recomputed = [lead_predict(model, lead.facts, now=lead.at).probability for lead in holdout]
    assert roc_auc_score([lead.won for lead in holdout], recomputed) == pytest.approx(report["model"]["auc"])
    lift = report["model"]["lift"]
    assert lift[0]["lift"] > 1.8 and lift[-1]["lift"] < 0.4
    assert sum(row["leads"] for row in lift) == 750


def test_probabilities_are_calibrated_on_the_holdout(model):
    report = model.report
    assert report["calibration_error"] < 0.08
    assert report["brier"] < 0.2
    assert sum(row["leads"] for row in report["calibration"]) == 750
    for row in report["calibration"]:
        if row["leads"] >= 30:
            observed, predicted = row["observed"], row["predicted"]
            assert observed is not None and predicted is not None
            # within 3.5 standard errors of a binomial share at the predicted rate
            assert abs(observed - predicted) < 3.5 * math.sqrt(predicted * (1 - predicted) / row["leads"]) + 0.05, row


def test_stages_compare_at_the_same_volume(model):
    rules, learnt = model.report["rules"], model.report["model"]
    assert rules is not None
    assert [row["leads"] for row in learnt["stages"]] == [row["leads"] for row in rules["stages"]]
    assert [row["stage"] for row in learnt["stages"]] == ["cold", "warm", "hot", "qualified"]
    assert rules["stage_thresholds"] == [11.0, 31.0, 60.0]
    for evaluation in (rules, learnt):
        recalls = [row["recall"] for row in evaluation["stages"]]
        assert recalls[0] == 1.0 and recalls == sorted(recalls, reverse=True)
    # at equal volume, the model's "qualified" is won more often than the rules'
    assert learnt["stages"][-1]["precision"] > rules["stages"][-1]["precision"]


def test_shuffled_labels_leave_nothing_to_learn(leads):
    report = model_train(examples(labels_shuffle(leads, seed=11))).report
    assert abs(report["model"]["auc"] - 0.5) < 0.08


def test_a_planted_post_outcome_event_is_ignored(leads, model):
    # given: every won lead signs at its outcome time and onboards after it; lost ones go quiet.
    # A model that sees 30 days past the outcome learns the answer from those events:
    leaky = model_train(examples(leads, shift=timedelta(days=30)))
    assert leaky.report["model"]["auc"] > 0.98
    assert "onboarding_step" in leaky.vocabulary.events
    # ours computes features at the outcome time, so it never sees them
    assert "onboarding_step" not in model.vocabulary.events
    assert "contract_signed" not in model.vocabulary.events
    assert model.report["model"]["auc"] < 0.95
    # and dropping everything at or after the outcome changes no lead's features
    for lead in leads[:200]:
        before = LeadFacts(events=[e for e in lead.events if e.timestamp < lead.at], traits=lead.traits)
        assert features_compute(lead.facts, cutoff=lead.at, vocabulary=model.vocabulary) == features_compute(
            before, cutoff=lead.at, vocabulary=model.vocabulary
        )


def test_training_refuses_below_the_minimum_naming_the_counts(leads):
    won = [lead for lead in leads if lead.won][: MIN_WON - 1]
    lost = [lead for lead in leads if not lead.won][:40]
    with pytest.raises(TrainingRefused) as refused:
        model_train(examples(won + lost))
    message = str(refused.value)
    assert f"at least {MIN_WON} won and {MIN_LOST} lost" in message
    assert f"{MIN_WON - 1} won and 40 lost" in message
    assert (refused.value.won, refused.value.lost) == (MIN_WON - 1, 40)


def test_training_refuses_when_the_holdout_holds_one_outcome(leads):
    # the latest quarter of outcomes are all lost: there is nothing to check the model on
    won = sorted((lead for lead in leads if lead.won), key=lambda lead: lead.at)[:60]
    lost = sorted((lead for lead in leads if not lead.won), key=lambda lead: lead.at)[-60:]
    assert max(lead.at for lead in won) < min(lead.at for lead in lost)
    with pytest.raises(TrainingRefused, match=r"holdout outcomes .* are all lost"):
        model_train(examples(won + lost))


def test_factors_sum_to_the_change_from_the_baseline_with_the_signs_of_their_terms(leads, model):
    for lead in leads[:100]:
        features = features_compute(lead.facts, cutoff=lead.at, vocabulary=model.vocabulary)
        everything = predict(model, features, top=len(model.names))
        # then: contributions add up to the move from the average lead, exactly
        total = sum(factor.contribution for factor in everything.factors)
        assert total == pytest.approx(everything.probability - everything.baseline, abs=1e-9)
        assert everything.probability == pytest.approx(probability(model, features))
        # each has the sign of its log-odds term
        for factor in everything.factors:
            i = model.names.index(factor.feature)
            raw = math.log1p(factor.value) if model.logged[i] else factor.value
            term = model.coefficients[i] * (raw - model.mean[i]) / model.scale[i]
            assert factor.contribution == 0 or math.copysign(1, factor.contribution) == math.copysign(1, term)
        # the top 3 are the 3 largest
        top = predict(model, features)
        assert len(top.factors) == 3
        sizes = sorted((abs(f.contribution) for f in everything.factors), reverse=True)
        assert [abs(f.contribution) for f in top.factors] == pytest.approx(sizes[:3])


def test_an_eager_lead_is_explained_by_its_recent_pricing_visits(leads, model):
    # given an unremarkable lead (two page views last week) that visited pricing 4 times in the last 3 days
    at = leads[0].at
    traits = {"industry": "retail", "company_size": "11-50", "role": "engineer"}
    base = [EventRow("page_view", at - timedelta(days=d)) for d in (9, 10)]
    visits = [EventRow("pricing_page_visit", at - timedelta(days=d)) for d in (0.5, 1.5, 2, 3)]
    eager = LeadFacts(events=[*base, *visits], traits=traits)
    # when
    prediction = lead_predict(model, eager, now=at)
    # then
    labels = [factor.label for factor in prediction.factors]
    assert any(re.fullmatch(r"4 pricing_page_visit in (7|30) days \+\d+%", label) for label in labels), labels
    for label in labels:
        assert re.search(r" [+-]\d+%$", label), label
    assert prediction.probability > lead_predict(model, LeadFacts(events=base, traits=traits), now=at).probability
    # scored 4 days earlier, the visits are still ahead: not seen
    earlier = at - timedelta(days=4)
    without = LeadFacts(events=base, traits=traits)
    assert lead_predict(model, eager, now=earlier) == lead_predict(model, without, now=earlier)


def test_the_model_round_trips_json_and_predicts_the_same(leads, model):
    text = json.dumps(model.to_json(), allow_nan=False)
    loaded = TrainedModel.from_json(json.loads(text))
    assert loaded == model
    for lead in leads[:20]:
        assert lead_predict(loaded, lead.facts, now=lead.at) == lead_predict(model, lead.facts, now=lead.at)


def test_points_suggestions_are_in_the_rules_units(model):
    suggestions = model.suggestions
    assert suggestions is not None
    points = {row["event_type"]: row for row in suggestions["points"]}
    scale = suggestions["scale"]
    assert scale is not None
    # the median positive learnt weight (of event types the rules score) lands on the median positive rule
    shared = [row for row in points.values() if row["current"] is not None]
    learnt = [row["log_odds"] * scale for row in shared if row["log_odds"] > 0]
    current = [row["current"] for row in shared if row["current"] is not None and row["current"] > 0]
    assert median(learnt) == pytest.approx(median(current))
    for row in points.values():
        assert row["suggested"] == round(row["log_odds"] * scale)
    # the hidden truth: intent shows in pricing visits, demo requests and the docs no rule scores;
    # email opens and downloads say nothing; unsubscribing is bad news
    assert points["integration_docs_view"]["current"] is None
    assert points["integration_docs_view"]["suggested"] >= 10
    for strong in ("pricing_page_visit", "demo_request", "integration_docs_view"):
        for weak in ("email_open", "download", "page_view"):
            assert points[strong]["suggested"] > points[weak]["suggested"], (strong, weak)
    strong = median(
        points[event]["suggested"] for event in ("pricing_page_visit", "demo_request", "integration_docs_view")
    )
    weak = median(points[event]["suggested"] for event in ("email_open", "download", "page_view"))
    assert strong > 2 * max(weak, 1)
    assert points["unsubscribe"]["suggested"] < 0


def test_threshold_suggestions_hit_the_target_precision_on_the_holdout(model):
    suggestions, rules = model.suggestions, model.report["rules"]
    assert suggestions is not None and rules is not None
    thresholds = suggestions["thresholds"]
    assert thresholds is not None
    warm, hot, qualified = thresholds
    assert 0 < warm < hot < qualified
    at_or_above = [point for point in rules["curve"] if point["threshold"] >= qualified]
    assert at_or_above[0]["precision"] >= 0.7
    # nothing lower hits it: the suggestion keeps as many leads qualified as it can
    below = [point for point in rules["curve"] if point["threshold"] < qualified and point["leads"] >= 5]
    assert below and all(point["precision"] < 0.7 for point in below)
    probability_threshold = suggestions["probability_threshold"]
    assert probability_threshold is not None
    hit = next(p for p in model.report["model"]["curve"] if p["threshold"] == probability_threshold)
    assert hit["precision"] >= 0.7 and hit["leads"] >= 5


def test_thresholds_keep_the_current_proportions_and_give_up_when_unreachable():
    def rules_with(curve: list[CurvePoint]) -> Evaluation:
        return Evaluation(auc=0.7, stage_thresholds=[11, 31, 60], stages=[], lift=[], curve=curve)

    curve = [
        CurvePoint(threshold=0, leads=100, precision=0.4, recall=1.0),
        CurvePoint(threshold=50, leads=40, precision=0.6, recall=0.6),
        CurvePoint(threshold=119.5, leads=20, precision=0.8, recall=0.4),
        CurvePoint(threshold=200, leads=3, precision=1.0, recall=0.08),  # too few leads to count
    ]
    assert thresholds_suggest(rules_with(curve), 0.75) == [22, 62, 120]
    assert thresholds_suggest(rules_with(curve), 0.95) is None
    assert thresholds_suggest(None, 0.75) is None


def test_lift_shares_tied_scores_evenly():
    # every lead scores the same: no order, so every tenth is the average (not the accident of input order)
    labels = np.array([1] * 30 + [0] * 70)
    rows = lift_by_decile(np.zeros(100), labels)
    assert [row["lift"] for row in rows] == pytest.approx([1.0] * 10)
    perfect = lift_by_decile(labels.astype(float), labels)
    assert [row["lift"] for row in perfect[:3]] == pytest.approx([1 / 0.3] * 3)
    assert [row["lift"] for row in perfect[3:]] == pytest.approx([0.0] * 7)


def test_stage_rows_count_each_stage_and_measure_at_or_above():
    scores = np.array([0, 5, 12, 40, 70, 90])
    labels = np.array([0, 0, 1, 0, 1, 1])
    rows = stage_rows(scores, labels, [11, 31, 60])
    assert [(row["stage"], row["leads"], row["won"]) for row in rows] == [
        ("cold", 2, 0), ("warm", 1, 1), ("hot", 1, 0), ("qualified", 2, 2),
    ]  # fmt: skip
    assert [row["precision"] for row in rows] == pytest.approx([0.5, 0.75, 2 / 3, 1.0])
    assert [row["recall"] for row in rows] == pytest.approx([1.0, 1.0, 2 / 3, 2 / 3])


def test_without_rule_scores_the_report_has_no_rules_side(leads):
    unscored = [Example(lead=lead.facts, won=lead.won, at=lead.at, key=lead.key) for lead in leads[:600]]
    model = model_train(unscored, current_points=CURRENT_POINTS)
    assert model.report["rules"] is None
    assert model.suggestions is not None
    assert model.suggestions["thresholds"] is None  # nothing to place them on
    assert model.suggestions["points"]  # the points come from the model alone
    # a lead with no events at all still gets a probability and three factors
    empty = lead_predict(model, LeadFacts(events=[]), now=leads[0].at)
    assert 0 < empty.probability < 1 and len(empty.factors) == 3


def test_loading_the_application_does_not_import_scikit_learn():
    """What a web process and a worker import (URLs, ASGI application, every task module) leaves scikit-learn and
    SciPy out: they cost each process seconds of start-up and tens of MB, and only training uses them."""
    script = (
        "import sys, django; django.setup()\n"
        "import leadpulse.asgi, leadpulse.urls\n"
        "from leadpulse.celery import app; app.loader.import_default_modules()\n"
        "from predictions.services import training\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}), len(app.tasks))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "leadpulse.settings.test", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded, tasks = out.stdout.split("]")
    assert loaded == "[" and int(tasks) > 20  # the task modules were imported, and neither library
