"""Page-number pagination of the API, strict about `page` and `pageSize`, and its documented parameters."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from core.errors import ApplicationError


class StrictPageNumberPagination(PageNumberPagination):
    """`page` and `pageSize` as documented: a malformed value is an error, not silently the default
    (an empty one, like every empty query parameter, is the same as leaving it out)."""

    page_size = 50
    page_size_query_param = "pageSize"

    def get_page_number(self, request: Request, paginator: Any) -> Any:
        return request.query_params.get(self.page_query_param) or 1

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param, "").strip()
        if not raw:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            raise ApplicationError("Must be an integer.", field=self.page_size_query_param) from None
        if size < 1:
            raise ApplicationError("Must be at least 1.", field=self.page_size_query_param)
        return min(size, self.max_page_size or size)


def page_parameters(max_page_size: int) -> list[OpenApiParameter]:
    return [
        OpenApiParameter(
            "page", {"type": "integer", "minimum": 1}, description="1-based page number (404 past the last page)."
        ),
        OpenApiParameter(
            "pageSize",
            {"type": "integer", "minimum": 1},
            description=f"Items per page, default 50, capped at {max_page_size}.",
        ),
    ]
