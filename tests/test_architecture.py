"""The import boundaries `make lint` checks (`.importlinter`): the custom contract catches what it should."""

import grimp
from importlinter import ContractCheck

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
        ("ingest.pages", "automations.forms"),
    )
    assert not result.kept
    assert broken(result) == [
        ("automations.engine", "scoring.engine"),
        ("automations.services", "scoring.services.fold"),
        ("ingest.pages", "automations.forms"),
        ("scoring.api", "ingest.models"),
        ("scoring.views", "ingest.schema"),
    ]
