"""Predictions benchmark: train on synthetic outcomes, then score every lead with the model.

Run from the repository root:  .venv/bin/python bench/predict.py [--help]

In one process, no database: `predictions.synthetic` generates `--leads` leads (about
`--events` events in all, the post-outcome ones included) with a hidden ground truth; the
engine's fold gives each its default-rules score at its outcome time (what the report
compares the model with); `predictions.learn.model_train` learns features at each outcome
time, trains and reports; then every lead is scored with the model "now" (after the last
event), as the scoring batches will. Phases, each timed on its own:
  generate  the synthetic leads (not part of any goal)
  rules     the default rules' fold of every lead up to its outcome (the service reads this from history)
  train     vocabulary, features at each outcome time, fit, holdout report, suggestions  (goal: < 60 s)
  store     the model to JSON text and back
  score     features + probability + top 3 factors of every lead: per-lead cost, next to the
            fold's per-lead cost on the same events (the model's share of a scoring batch's CPU)
Prints a table and the report's headline figures; writes bench/results/predict.json.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: its ingest.py would shadow the `ingest` app

import django  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadpulse.settings.test")
django.setup()

from predictions.learn import Example, TrainedModel, lead_predict, model_train  # noqa: E402
from predictions.synthetic import SyntheticLead, leads_generate  # noqa: E402
from scoring.engine import EventFact, Policy, Rule, fold  # noqa: E402
from scoring.services.leads import DEFAULT_RULES  # noqa: E402

RESULTS = ROOT / "bench" / "results"
EVENTS_PER_ACTIVITY = 13.3  # events per lead at `activity=1.0` (measured on the generator)


def facts_of(lead: SyntheticLead, until) -> list[EventFact]:
    return [
        EventFact(event_id=f"{lead.key}-{i}", name=event.name, timestamp=event.timestamp)
        for i, event in enumerate(lead.events)
        if event.timestamp < until
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000, help="about this many events in all")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="score phase repetitions (the best is kept)")
    args = parser.parse_args()

    policy = Policy()
    rules = [Rule(id=i, event_type=event_type, points=points) for i, (event_type, points) in enumerate(DEFAULT_RULES)]
    figures: dict[str, object] = {"load_average": os.getloadavg()[0], "cpus": os.cpu_count()}

    started = time.perf_counter()
    activity = args.events / args.leads / EVENTS_PER_ACTIVITY
    leads = leads_generate(args.leads, seed=args.seed, activity=activity)
    figures["generate_s"] = time.perf_counter() - started
    events = sum(len(lead.events) for lead in leads)
    figures.update(leads=len(leads), events=events, won=sum(lead.won for lead in leads))

    started = time.perf_counter()
    scores = []
    for lead in leads:
        state, _ = fold(facts_of(lead, lead.at), rules=rules, policy=policy)
        scores.append(state.decayed_to(policy.decay, lead.at))
    figures["rules_s"] = time.perf_counter() - started

    examples = [
        Example(lead=lead.facts, won=lead.won, at=lead.at, rule_score=score, key=lead.key)
        for lead, score in zip(leads, scores, strict=True)
    ]
    started = time.perf_counter()
    model = model_train(examples, current_points=dict(DEFAULT_RULES))
    figures["train_s"] = time.perf_counter() - started

    started = time.perf_counter()
    text = json.dumps(model.to_json(), allow_nan=False)
    loaded = TrainedModel.from_json(json.loads(text))
    figures["store_ms"] = (time.perf_counter() - started) * 1000
    figures["model_json_bytes"] = len(text.encode())

    now = max(event.timestamp for lead in leads for event in lead.events) + timedelta(hours=1)
    facts = [lead.facts for lead in leads]
    logs = [facts_of(lead, now) for lead in leads]
    score_best = fold_best = float("inf")
    for _ in range(args.repeat):
        started = time.perf_counter()
        for lead in facts:
            lead_predict(loaded, lead, now=now)
        score_best = min(score_best, time.perf_counter() - started)
        started = time.perf_counter()
        for log in logs:
            fold(log, rules=rules, policy=policy)
        fold_best = min(fold_best, time.perf_counter() - started)
    figures["score_s"] = score_best
    figures["score_us_per_lead"] = score_best / len(leads) * 1e6
    figures["fold_us_per_lead"] = fold_best / len(leads) * 1e6

    report = model.report
    rules_report = report["rules"]
    figures["holdout_auc_model"] = report["model"]["auc"]
    figures["holdout_auc_rules"] = rules_report["auc"] if rules_report else None
    figures["calibration_error"] = report["calibration_error"]
    figures["top_decile_lift_model"] = report["model"]["lift"][0]["lift"]
    figures["top_decile_lift_rules"] = rules_report["lift"][0]["lift"] if rules_report else None
    figures["suggestions"] = model.suggestions
    figures["git"] = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    figures["python"] = platform.python_version()

    print(
        f"{figures['leads']} leads, {events} events, {figures['won']} won; load average {figures['load_average']:.2f}"
    )
    print(f"{'phase':<10}{'seconds':>10}  note")
    print(f"{'generate':<10}{figures['generate_s']:>10.2f}  synthetic leads (no goal)")
    print(f"{'rules':<10}{figures['rules_s']:>10.2f}  default rules' fold up to each outcome")
    print(f"{'train':<10}{figures['train_s']:>10.2f}  features + fit + report + suggestions (goal < 60 s)")
    print(f"{'store':<10}{figures['store_ms'] / 1000:>10.3f}  JSON round trip, {figures['model_json_bytes']} bytes")
    print(
        f"{'score':<10}{figures['score_s']:>10.2f}  {figures['score_us_per_lead']:.1f} us/lead with the model; "
        f"the fold of the same log: {figures['fold_us_per_lead']:.1f} us/lead"
    )
    print(
        f"holdout AUC model {figures['holdout_auc_model']:.3f} vs rules {figures['holdout_auc_rules']:.3f}; "
        f"calibration error {figures['calibration_error']:.3f}; top-decile lift "
        f"{figures['top_decile_lift_model']:.2f} vs {figures['top_decile_lift_rules']:.2f}"
    )
    if model.suggestions:
        points = ", ".join(
            f"{row['event_type']} {row['current']}->{row['suggested']}" for row in model.suggestions["points"]
        )
        print(f"suggested points: {points}")
        print(f"suggested thresholds (warm, hot, qualified): {model.suggestions['thresholds']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "predict.json").write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
