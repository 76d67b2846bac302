"""The import boundaries `make lint` checks (`.importlinter`): the custom contract catches what it should."""

import ast

import grimp
from importlinter import ContractCheck

from tests.live import ROOT
from tools.import_contracts import PublicFaceContract


def check(*imports: tuple[str, str]) -> ContractCheck:
    graph = grimp.ImportGraph()
    for importer, imported in imports:
        for module in (importer, imported):
            graph.add_module(module)
        graph.add_import(importer=importer, imported=imported, line_number=3, line_contents=f"import {imported}")
    contract = PublicFaceContract(
        name="public face",
        session_options={"root_packages": ["ingest", "scoring", "automations"]},
        contract_options={
            "type": "public_face",
            "apps": ["ingest", "scoring", "automations"],
            "public": ["services", "selectors", "contracts"],
            "data_layer": ["models", "services", "selectors", "serializers"],
        },
    )
    return contract.check(graph, verbose=False)


def broken(result: ContractCheck) -> list[tuple[str, str]]:
    return [(link.importer, link.imported) for link in result.metadata["broken"]]


def test_another_apps_public_face_is_allowed():
    result = check(
        ("automations.api", "scoring.selectors"),
        ("automations.engine", "scoring.contracts"),
        ("scoring.services.batch", "ingest.services"),
        ("scoring.api.leads", "scoring.engine"),  # an app's own internals
        ("scoring.services.fold", "ingest.models"),  # models from the data layer
        ("scoring.serializers", "ingest.models"),
    )
    assert result.kept, broken(result)


def test_internals_and_models_outside_the_data_layer_are_refused():
    result = check(
        ("automations.engine", "scoring.engine"),
        ("automations.services", "scoring.services.fold"),  # a public package's inner module
        ("scoring.api", "ingest.models"),
        ("scoring.views", "ingest.schema"),
        ("ingest.views", "automations.forms"),
    )
    assert not result.kept
    assert broken(result) == [
        ("automations.engine", "scoring.engine"),
        ("automations.services", "scoring.services.fold"),
        ("ingest.views", "automations.forms"),
        ("scoring.api", "ingest.models"),
        ("scoring.views", "ingest.schema"),
    ]


# --- Scoring is the only writer of a lead's score columns -----------------------------------

SCORE_COLUMNS = {
    "current_score", "engagement_score", "fit_score", "fit_grade", "lead_stage", "fold_state",
    "velocity_score", "events_last_24h", "last_scored_at",
}  # fmt: skip


def score_column_writes(source: str) -> list[tuple[int, str]]:
    """`x.current_score = …`, `….update(lead_stage=…)`, `Lead(fit_score=…)`: a write of a score column."""
    writes = []
    for node in ast.walk(ast.parse(source)):
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AugAssign | ast.AnnAssign)
            else []
        )
        for target in targets:
            if isinstance(target, ast.Attribute) and target.attr in SCORE_COLUMNS:
                writes.append((node.lineno, target.attr))
        if isinstance(node, ast.Call):
            writes += [(node.lineno, k.arg) for k in node.keywords if k.arg in SCORE_COLUMNS]
    return writes


def test_the_score_column_check_sees_each_kind_of_write():
    source = "lead.current_score = 5\nLead.objects.filter(id=1).update(lead_stage='hot')\nLead(fit_score=3)\n"
    assert score_column_writes(source) == [(1, "current_score"), (2, "lead_stage"), (3, "fit_score")]


def test_only_scoring_writes_the_leads_score_columns():
    """ingest owns the lead's identity row; its score columns are written by scoring alone (DESIGN, README)."""
    assert (ROOT / "manage.py").is_file()  # a wrong ROOT would check other files, or none
    offenders = []
    for package in ("core", "accounts", "ingest", "automations", "companies", "leadpulse"):
        paths = [path for path in sorted((ROOT / package).rglob("*.py")) if "migrations" not in path.parts]
        assert paths, f"no module under {ROOT / package}"
        for path in paths:
            offenders += [
                f"{path.relative_to(ROOT)}:{line} {column}" for line, column in score_column_writes(path.read_text())
            ]
    assert offenders == []
