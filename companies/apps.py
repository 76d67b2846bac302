from django.apps import AppConfig


class CompaniesConfig(AppConfig):
    name = "companies"

    def ready(self) -> None:
        from core.leadfacets import lead_facets

        from .facets import ASSOCIATED_COMPANY

        lead_facets.register(ASSOCIATED_COMPANY)  # the leads' company column, filter, card and field
