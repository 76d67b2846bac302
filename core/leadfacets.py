"""Lead facets: what an app above scoring adds to a lead wherever scoring shows one.

Scoring owns leads' lists, pages, API and exports, but sits below companies and predictions in the
layers, so it cannot ask them for a lead's company or its conversion probability. Each of those apps
registers a `LeadFacet` here once (in its `AppConfig.ready`), and scoring reads the registry: the lead
API gains a read-only field per facet (with its OpenAPI schema), the leads list a column, a filter and
a sort key, the lead page a card, the CSV exports a column. Values are read for a whole page of leads
at once (one call per facet), so a facet adds a constant number of queries to a page.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# (project id, lead ids) -> a JSON-able value per lead; a lead left out has none (null on the wire)
FacetValues = Callable[[int, Sequence[int]], Mapping[int, Any]]
# (project id, the filter parameter's value) -> a queryset of the matching leads' ids (`values("id")`);
# raises `core.errors.ApplicationError` naming the parameter for a value it does not understand
FacetFilter = Callable[[int, str], Any]
# () -> a query expression to sort leads by (over the `ingest.Lead` table: `OuterRef("pk")` is the lead)
FacetOrdering = Callable[[], Any]


@dataclass(frozen=True)
class LeadFacet:
    key: str  # camelCase: the lead API's field, the list's filter parameter and sort key
    label: str  # the column's and the card's heading
    order: int
    values: FacetValues
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "object", "nullable": True})
    description: str = ""
    column: str = ""  # template of the leads list's cell (given `value`); "" for no column
    card: str = ""  # template of a card on the lead page (given `value` and `lead`); "" for no card
    filter: FacetFilter | None = None  # `?<key>=` on the leads list and API
    filter_description: str = ""
    filter_schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})  # the parameter's, documented
    ordering: FacetOrdering | None = None  # `?ordering=<key>` / `-<key>`, ties by id
    export: Callable[[Any], str] | None = None  # the CSV exports' cell for a value; None: no column


class LeadFacetRegistry:
    def __init__(self) -> None:
        self._facets: dict[str, LeadFacet] = {}

    def register(self, facet: LeadFacet) -> LeadFacet:
        """Add a facet (again the same facet is a no-op, another one under the same key an error)."""
        if self._facets.setdefault(facet.key, facet) is not facet:
            raise ValueError(f"A lead facet {facet.key!r} is registered already.")
        return facet

    def unregister(self, key: str) -> None:
        self._facets.pop(key, None)

    def get(self, key: str) -> LeadFacet | None:
        return self._facets.get(key)

    def __iter__(self) -> Iterator[LeadFacet]:
        return iter(sorted(self._facets.values(), key=lambda facet: (facet.order, facet.key)))

    def filters(self) -> list[LeadFacet]:
        return [facet for facet in self if facet.filter is not None]

    def orderings(self) -> list[str]:
        return [facet.key for facet in self if facet.ordering is not None]

    def values_for(self, *, project_id: int, lead_ids: Sequence[int]) -> dict[str, Mapping[int, Any]]:
        """Every facet's values for these leads of the project: {facet key: {lead id: value}}."""
        ids = list(lead_ids)
        return {facet.key: (facet.values(project_id, ids) if ids else {}) for facet in self}


lead_facets = LeadFacetRegistry()
