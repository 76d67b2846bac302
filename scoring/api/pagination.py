"""The API's strict page-number pagination (`core.pagination`), as the scoring API has always named it."""

from core.pagination import StrictPageNumberPagination, page_parameters

__all__ = ["StrictPageNumberPagination", "page_parameters"]
