from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "predictions"

    def ready(self) -> None:
        from core.leadfacets import lead_facets

        from .facets import OUTCOME_FACET, PROBABILITY_FACET

        lead_facets.register(OUTCOME_FACET)
        lead_facets.register(PROBABILITY_FACET)
