"""Learn the probability that a lead is won from past outcomes; say how well the rules do; suggest better ones.

Pure: examples (a lead's log and traits, its outcome and time, the rule-based score it had
then) in, a `TrainedModel` value out. Features come from `features.py` at each outcome's
time, so nothing after the outcome is seen. The split is by time: train on the earlier
outcomes, report on the later ones, as the model will be used on leads whose outcome is
still ahead. The model is a regularised logistic regression on standardised features
(log-counts), which is calibrated by its loss; the report checks that on the holdout.
A trained model is plain numbers (vocabulary, scaler, coefficients) and round-trips through
JSON; `predict` needs neither scikit-learn nor numpy.

scikit-learn is imported by the functions that train, not by this module: importing it (with SciPy) costs
seconds of CPU and tens of MB in every process that loads the application (web, workers, beat), and only
a training task or the training report needs it.
"""

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from statistics import median
from typing import Any, TypedDict

import numpy as np

from .features import (
    RECENCY,
    RECENCY_CAP_DAYS,
    VELOCITY,
    WINDOWS,
    LeadFacts,
    Vocabulary,
    count_name,
    features_compute,
    vocabulary_learn,
)

FORMAT = 1
MIN_WON = 30
MIN_LOST = 30
HOLDOUT_FRACTION = 0.25
REGULARISATION = 1.0  # scikit-learn's C: smaller is stronger (L2)
STAGES = ("cold", "warm", "hot", "qualified")
RULE_THRESHOLDS = (11, 31, 60)  # warm, hot, qualified: DESIGN.md's defaults
TARGET_PRECISION = 0.7  # of "qualified", for the threshold suggestions
MIN_QUALIFIED = 5  # a threshold is not suggested on fewer holdout leads than this
CALIBRATION_BINS = 10
CURVE_POINTS = 101  # thresholds kept per precision curve


class TrainingRefused(ValueError):
    """Too few outcomes (or a split without both outcomes) to learn or to check what was learnt."""

    code = "not_enough_outcomes"

    def __init__(self, message: str, *, won: int, lost: int) -> None:
        super().__init__(message)
        self.won, self.lost = won, lost


@dataclass(frozen=True)
class Example:
    """One past outcome: the lead's log and traits, whether it was won and when, its rule-based score then."""

    lead: LeadFacts
    won: bool
    at: datetime
    rule_score: float | None = None  # the current rules' score at `at`, for the side-by-side report
    key: str = ""


class StageRow(TypedDict):
    stage: str
    leads: int  # holdout leads at this stage
    won: int
    precision: float | None  # won share of the leads at this stage or above
    recall: float  # share of the won leads at this stage or above


class DecileRow(TypedDict):
    decile: int  # 1: the tenth with the highest scores
    leads: int
    rate: float  # won share (ties across a decile boundary shared out evenly)
    lift: float  # rate / the holdout's won share


class CurvePoint(TypedDict):
    threshold: float
    leads: int  # holdout leads scoring at least `threshold`
    precision: float
    recall: float


class CalibrationBin(TypedDict):
    low: float
    high: float
    leads: int
    predicted: float | None  # mean probability in the bin
    observed: float | None  # won share in the bin


class Evaluation(TypedDict):
    auc: float
    stage_thresholds: list[float]  # warm, hot, qualified in the scorer's units
    stages: list[StageRow]
    lift: list[DecileRow]
    curve: list[CurvePoint]


class Split(TypedDict):
    leads: int
    won: int
    lost: int
    first: str  # ISO time of the earliest outcome
    last: str


class Report(TypedDict):
    train: Split
    holdout: Split
    model: Evaluation
    rules: Evaluation | None  # None when some holdout example had no rule-based score
    calibration: list[CalibrationBin]
    brier: float
    calibration_error: float  # expected calibration error: mean |predicted - observed| weighted by bin size


class PointsSuggestion(TypedDict):
    event_type: str
    current: int | None  # None: no rule scores this event type today
    suggested: int
    log_odds: float  # what one such event in the last 30 days adds to the log-odds of winning (additive model)


class Suggestions(TypedDict):
    points: list[PointsSuggestion]
    scale: float | None  # rule points per unit of log-odds
    target_precision: float
    thresholds: list[int] | None  # warm, hot, qualified on the current rules' score; None: not reachable
    probability_threshold: float | None  # "qualified" on the model's probability at the target precision


@dataclass(frozen=True)
class Factor:
    feature: str
    value: float
    contribution: float  # probability points (0.18: +18 %) against the average training lead
    label: str  # "3 pricing_page_visit in 7 days +18%"


@dataclass(frozen=True)
class Prediction:
    probability: float
    baseline: float  # the average training lead's probability; contributions sum to probability - baseline
    factors: tuple[Factor, ...]  # the top 3 by size


@dataclass(frozen=True)
class TrainedModel:
    vocabulary: Vocabulary
    names: tuple[str, ...]
    logged: tuple[bool, ...]  # log1p before scaling (counts)
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coefficients: tuple[float, ...]
    intercept: float
    report: Report
    event_log_odds: dict[str, float]  # per event type, for points suggestions: see `event_log_odds_learn`
    suggestions: Suggestions | None = None
    trained_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "vocabulary": self.vocabulary.to_json(),
            "features": list(self.names),
            "logged": list(self.logged),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coefficients": list(self.coefficients),
            "intercept": self.intercept,
            "report": self.report,
            "eventLogOdds": self.event_log_odds,
            "suggestions": self.suggestions,
            "trainedAt": self.trained_at.isoformat() if self.trained_at else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "TrainedModel":
        if data.get("format") != FORMAT:
            raise ValueError(f"Unknown model format {data.get('format')!r} (this code reads {FORMAT}).")
        vocabulary = Vocabulary.from_json(data["vocabulary"])
        names = tuple(data["features"])
        if names != vocabulary.names():
            raise ValueError("The model's features do not match its vocabulary.")
        return cls(
            vocabulary=vocabulary,
            names=names,
            logged=tuple(bool(x) for x in data["logged"]),
            mean=tuple(float(x) for x in data["mean"]),
            scale=tuple(float(x) for x in data["scale"]),
            coefficients=tuple(float(x) for x in data["coefficients"]),
            intercept=float(data["intercept"]),
            report=data["report"],
            event_log_odds={str(k): float(v) for k, v in data["eventLogOdds"].items()},
            suggestions=data.get("suggestions"),
            trained_at=datetime.fromisoformat(data["trainedAt"]) if data.get("trainedAt") else None,
        )


def _logged(names: Sequence[str]) -> tuple[bool, ...]:
    return tuple(name != RECENCY and not name.startswith("trait:") for name in names)


def _transform(matrix: np.ndarray, logged: Sequence[bool]) -> np.ndarray:
    out = matrix.copy()
    columns = np.asarray(logged, dtype=bool)
    out[:, columns] = np.log1p(out[:, columns])
    return out


def model_train(
    examples: Sequence[Example],
    *,
    min_won: int = MIN_WON,
    min_lost: int = MIN_LOST,
    holdout_fraction: float = HOLDOUT_FRACTION,
    regularisation: float = REGULARISATION,
    rule_thresholds: tuple[int, int, int] = RULE_THRESHOLDS,
    current_points: Mapping[str, int] | None = None,
    target_precision: float = TARGET_PRECISION,
    trained_at: datetime | None = None,
) -> TrainedModel:
    """Train on the earlier outcomes, evaluate on the later ones; refuse below `min_won` won and `min_lost` lost."""
    won = sum(1 for example in examples if example.won)
    lost = len(examples) - won
    if won < min_won or lost < min_lost:
        raise TrainingRefused(
            f"Training needs at least {min_won} won and {min_lost} lost outcomes; this project has {won} won and "
            f"{lost} lost.",
            won=won,
            lost=lost,
        )
    ordered = sorted(examples, key=lambda example: (example.at, example.key))
    cut = len(ordered) - max(1, round(len(ordered) * holdout_fraction))
    train, holdout = ordered[:cut], ordered[cut:]
    for part, name in ((train, "training"), (holdout, "holdout")):
        part_won = sum(1 for example in part if example.won)
        if part_won == 0 or part_won == len(part):
            raise TrainingRefused(
                f"The {name} outcomes (split by time: the latest {holdout_fraction:.0%} are held out) are all "
                f"{'won' if part_won else 'lost'}; record outcomes of both kinds over time to train.",
                won=won,
                lost=lost,
            )

    vocabulary = vocabulary_learn((example.lead, example.at) for example in train)
    names = vocabulary.names()
    logged = _logged(names)
    raw_train = _matrix(train, vocabulary)
    x_train = _transform(raw_train, logged)
    mean = x_train.mean(axis=0)
    scale = x_train.std(axis=0)
    scale[scale == 0] = 1.0
    y_train = np.array([example.won for example in train], dtype=int)
    from sklearn.linear_model import LogisticRegression  # see the module's docstring

    classifier = LogisticRegression(C=regularisation, max_iter=2000)
    classifier.fit((x_train - mean) / scale, y_train)

    x_holdout = (_transform(_matrix(holdout, vocabulary), logged) - mean) / scale
    probabilities = classifier.predict_proba(x_holdout)[:, 1]
    y_holdout = np.array([example.won for example in holdout], dtype=int)
    rule_scores = [example.rule_score for example in holdout]
    rules = None if None in rule_scores else np.array(rule_scores, dtype=float)
    report = _report(train, holdout, probabilities, y_holdout, rules, rule_thresholds)
    event_log_odds = event_log_odds_learn(raw_train, y_train, vocabulary, regularisation)
    suggestions = None
    if current_points is not None:
        suggestions = Suggestions(
            points=points_suggest(event_log_odds, current_points),
            scale=points_scale(event_log_odds, current_points),
            target_precision=target_precision,
            thresholds=thresholds_suggest(report["rules"], target_precision, rule_thresholds),
            probability_threshold=threshold_for_precision(report["model"]["curve"], target_precision),
        )
    return TrainedModel(
        vocabulary=vocabulary,
        names=names,
        logged=logged,
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        coefficients=tuple(float(v) for v in classifier.coef_[0]),
        intercept=float(classifier.intercept_[0]),
        report=report,
        event_log_odds=event_log_odds,
        suggestions=suggestions,
        trained_at=trained_at,
    )


def _matrix(examples: Sequence[Example], vocabulary: Vocabulary) -> np.ndarray:
    rows = [features_compute(example.lead, cutoff=example.at, vocabulary=vocabulary) for example in examples]
    return np.array(rows, dtype=float).reshape(len(rows), len(vocabulary.names()))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    e = math.exp(x)
    return e / (1 + e)


def _standardised(model: TrainedModel, features: Sequence[float]) -> list[float]:
    if len(features) != len(model.names):
        raise ValueError(f"Expected {len(model.names)} features, got {len(features)}.")
    return [
        ((math.log1p(value) if logged else value) - mean) / scale
        for value, logged, mean, scale in zip(features, model.logged, model.mean, model.scale, strict=True)
    ]


def probability(model: TrainedModel, features: Sequence[float]) -> float:
    """The probability of winning for a feature vector (`features_compute` with the model's vocabulary)."""
    z = _standardised(model, features)
    return _sigmoid(model.intercept + sum(c * v for c, v in zip(model.coefficients, z, strict=True)))


def predict(model: TrainedModel, features: Sequence[float], *, top: int = 3) -> Prediction:
    """The probability of winning and the `top` factors behind it, in probability points.

    Contributions are integrated gradients from the average training lead (every standardised
    feature 0): for a logistic model each feature's share of the log-odds, times the change in
    probability per unit of log-odds along the way. So they sum to `probability - baseline`
    exactly, and each has the sign of its log-odds term.
    """
    z = _standardised(model, features)
    terms = [c * v for c, v in zip(model.coefficients, z, strict=True)]
    logit = model.intercept + sum(terms)
    p, baseline = _sigmoid(logit), _sigmoid(model.intercept)
    moved = logit - model.intercept
    per_unit = (p - baseline) / moved if abs(moved) > 1e-9 else p * (1 - p)
    contributions = [term * per_unit for term in terms]
    sizes = [abs(contribution) for contribution in contributions]
    order = heapq.nlargest(top, range(len(sizes)), key=sizes.__getitem__)  # ties: the earlier feature
    factors = tuple(
        Factor(
            feature=model.names[i],
            value=float(features[i]),
            contribution=contributions[i],
            label=factor_label(model.names[i], float(features[i]), contributions[i]),
        )
        for i in order
    )
    return Prediction(probability=p, baseline=baseline, factors=factors)


def lead_predict(model: TrainedModel, lead: LeadFacts, *, now: datetime, top: int = 3) -> Prediction:
    """`predict` on the lead's features at `now` (its events from `now` on are not seen)."""
    return predict(model, features_compute(lead, cutoff=now, vocabulary=model.vocabulary), top=top)


def _count_window(name: str) -> tuple[str, int] | None:
    event, _, suffix = name.rpartition("_")
    if suffix.endswith("d") and suffix[:-1].isdigit() and int(suffix[:-1]) in WINDOWS:
        return event, int(suffix[:-1])
    return None


def _days(days: int) -> str:
    return f"{days} day{'s' if days != 1 else ''}"


def factor_label(name: str, value: float, contribution: float) -> str:
    """How a factor reads: "3 pricing_page_visit in 7 days +18%", "role is student -9%"."""
    effect = f"{contribution * 100:+.0f}%"
    if name == RECENCY:
        if value >= RECENCY_CAP_DAYS:
            return f"no activity in {RECENCY_CAP_DAYS:.0f} days {effect}"
        return f"last event {_days(math.floor(value))} ago {effect}" if value >= 1 else f"active today {effect}"
    if name == VELOCITY:
        return f"{value:.0f} event{'s' if value != 1 else ''} in 24 h {effect}"
    if name.startswith("trait:"):
        key, _, category = name.removeprefix("trait:").partition("=")
        return f"{key} is {'' if value else 'not '}{category} {effect}"
    counted = _count_window(name)
    if counted is not None:
        event, days = counted
        amount = f"{value:.0f}" if value else "no"
        return f"{amount} {event} in {_days(days)} {effect}"
    return f"{name} = {value:g} {effect}"


# --- the report -------------------------------------------------------------------------------


def _split(examples: Sequence[Example]) -> Split:
    won = sum(1 for example in examples if example.won)
    return Split(
        leads=len(examples),
        won=won,
        lost=len(examples) - won,
        first=examples[0].at.isoformat(),
        last=examples[-1].at.isoformat(),
    )


def _report(
    train: Sequence[Example],
    holdout: Sequence[Example],
    probabilities: np.ndarray,
    labels: np.ndarray,
    rules: np.ndarray | None,
    rule_thresholds: tuple[int, int, int],
) -> Report:
    rule_evaluation = None
    if rules is not None:
        rule_evaluation = evaluation(rules, labels, [float(t) for t in rule_thresholds])
        # the model's stages hold as many holdout leads as the rules' do: precision and recall compare at equal volume
        shares = [float(np.mean(rules >= t)) for t in rule_thresholds]
    else:
        shares = [0.75, 0.5, 0.25]
    model_thresholds = [_quantile_threshold(probabilities, share) for share in shares]
    bins = calibration(probabilities, labels)
    weighted = sum(b["leads"] * abs((b["predicted"] or 0) - (b["observed"] or 0)) for b in bins)
    return Report(
        train=_split(train),
        holdout=_split(holdout),
        model=evaluation(probabilities, labels, model_thresholds),
        rules=rule_evaluation,
        calibration=bins,
        brier=float(np.mean((probabilities - labels) ** 2)),
        calibration_error=float(weighted / len(labels)),
    )


def _quantile_threshold(scores: np.ndarray, share: float) -> float:
    """The score at or above which `share` of `scores` lie (1.0 + max when none should)."""
    if share <= 0:
        return float(scores.max()) + 1.0
    ordered = np.sort(scores)[::-1]
    return float(ordered[min(len(ordered), max(1, round(share * len(ordered)))) - 1])


def evaluation(scores: np.ndarray, labels: np.ndarray, thresholds: Sequence[float]) -> Evaluation:
    """AUC, precision and recall per stage, lift by decile and a precision curve of one scorer on the holdout."""
    from sklearn.metrics import roc_auc_score  # see the module's docstring

    return Evaluation(
        auc=float(roc_auc_score(labels, scores)),
        stage_thresholds=[float(t) for t in thresholds],
        stages=stage_rows(scores, labels, thresholds),
        lift=lift_by_decile(scores, labels),
        curve=precision_curve(scores, labels),
    )


def stage_rows(scores: np.ndarray, labels: np.ndarray, thresholds: Sequence[float]) -> list[StageRow]:
    stage_index = np.searchsorted(np.asarray(thresholds, dtype=float), scores, side="right")
    total_won = int(labels.sum())
    rows: list[StageRow] = []
    for i, stage in enumerate(STAGES):
        at = stage_index == i
        above = stage_index >= i
        rows.append(
            StageRow(
                stage=stage,
                leads=int(at.sum()),
                won=int(labels[at].sum()),
                precision=float(labels[above].mean()) if above.any() else None,
                recall=float(labels[above].sum() / total_won) if total_won else 0.0,
            )
        )
    return rows


def lift_by_decile(scores: np.ndarray, labels: np.ndarray) -> list[DecileRow]:
    """Won share per tenth of the holdout, highest scores first; tied scores share their won share."""
    order = np.argsort(-scores, kind="stable")
    ranked_scores, ranked_labels = scores[order], labels[order].astype(float)
    expected = np.empty_like(ranked_labels)
    _, starts, counts = np.unique(-ranked_scores, return_index=True, return_counts=True)
    for start, count in zip(starts, counts, strict=True):
        expected[start : start + count] = ranked_labels[start : start + count].mean()
    base = float(labels.mean())
    rows: list[DecileRow] = []
    for decile, part in enumerate(np.array_split(expected, 10), start=1):
        rate = float(part.mean()) if len(part) else 0.0
        rows.append(DecileRow(decile=decile, leads=len(part), rate=rate, lift=rate / base if base else 0.0))
    return rows


def precision_curve(scores: np.ndarray, labels: np.ndarray) -> list[CurvePoint]:
    """Precision and recall of "score >= threshold" at up to `CURVE_POINTS` thresholds over the scores seen."""
    candidates = np.unique(scores)
    if len(candidates) > CURVE_POINTS:
        candidates = np.unique(np.quantile(scores, np.linspace(0, 1, CURVE_POINTS), method="inverted_cdf"))
    total_won = int(labels.sum())
    points: list[CurvePoint] = []
    for threshold in candidates:
        selected = scores >= threshold
        leads = int(selected.sum())
        hits = int(labels[selected].sum())
        points.append(
            CurvePoint(
                threshold=float(threshold),
                leads=leads,
                precision=hits / leads if leads else 0.0,
                recall=hits / total_won if total_won else 0.0,
            )
        )
    return points


def calibration(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> list[CalibrationBin]:
    """Mean predicted probability against the won share, in `bins` equal-width probability bins."""
    index = np.minimum((probabilities * bins).astype(int), bins - 1)
    rows: list[CalibrationBin] = []
    for i in range(bins):
        members = index == i
        leads = int(members.sum())
        rows.append(
            CalibrationBin(
                low=i / bins,
                high=(i + 1) / bins,
                leads=leads,
                predicted=float(probabilities[members].mean()) if leads else None,
                observed=float(labels[members].mean()) if leads else None,
            )
        )
    return rows


# --- suggestions ------------------------------------------------------------------------------


def event_log_odds_learn(
    raw: np.ndarray, labels: np.ndarray, vocabulary: Vocabulary, regularisation: float
) -> dict[str, float]:
    """Per event type, the log-odds one event in the last 30 days adds, in a model that only adds events up.

    The rules are such a model (a sum of points per event), so its weights are what points
    should be. The main model's windowed, log-scaled and correlated coefficients are not:
    split across windows and velocity, one event type's weight can be any sign.
    """
    position = {name: i for i, name in enumerate(vocabulary.names())}
    columns = [position[count_name(event, WINDOWS[-1])] for event in vocabulary.events]
    if not columns:
        return {}
    from sklearn.linear_model import LogisticRegression  # see the module's docstring

    additive = LogisticRegression(C=regularisation, max_iter=2000).fit(raw[:, columns], labels)
    return {event: float(w) for event, w in zip(vocabulary.events, additive.coef_[0], strict=True)}


def points_scale(event_log_odds: Mapping[str, float], current_points: Mapping[str, int]) -> float | None:
    """Rule points per unit of log-odds, so the median positive suggestion equals the median positive rule."""
    effects = event_log_odds
    shared = [event for event in effects if event in current_points]
    current = [current_points[event] for event in shared if current_points[event] > 0]
    learnt = [effects[event] for event in shared if effects[event] > 0]
    if not current or not learnt:
        return None
    return median(current) / median(learnt)


def points_suggest(event_log_odds: Mapping[str, float], current_points: Mapping[str, int]) -> list[PointsSuggestion]:
    """Points per event type from the model, in the rules' units (see `points_scale`), rounded; largest first."""
    scale = points_scale(event_log_odds, current_points)
    if scale is None:
        return []
    effects = event_log_odds
    rows = [
        PointsSuggestion(
            event_type=event,
            current=current_points.get(event),
            suggested=round(effect * scale),
            log_odds=effect,
        )
        for event, effect in effects.items()
    ]
    return sorted(rows, key=lambda row: (-row["suggested"], row["event_type"]))


def threshold_for_precision(
    curve: Sequence[CurvePoint], target: float, *, min_leads: int = MIN_QUALIFIED
) -> float | None:
    """The lowest threshold whose leads at or above it are won at `target` precision or better (None: none is)."""
    for point in curve:  # ascending thresholds: the first that qualifies keeps the most leads
        if point["leads"] >= min_leads and point["precision"] >= target:
            return point["threshold"]
    return None


def thresholds_suggest(
    rules: Evaluation | None, target: float, current: tuple[int, int, int] = RULE_THRESHOLDS
) -> list[int] | None:
    """Warm, hot, qualified on the rules' score: qualified at `target` precision, the others kept in proportion."""
    if rules is None:
        return None
    qualified = threshold_for_precision(rules["curve"], target)
    if qualified is None:
        return None
    q = max(3, math.ceil(qualified))
    warm = max(1, round(q * current[0] / current[2]))
    hot = min(q - 1, max(warm + 1, round(q * current[1] / current[2])))
    return [warm, hot, q]
