"""django-csp's middleware, minus the policies it would build for responses that carry neither."""

from csp.middleware import CSPMiddleware as BaseCSPMiddleware
from django.http import HttpRequest
from django.http.response import HttpResponseBase


class CSPMiddleware(BaseCSPMiddleware):
    """django-csp builds both policies for every response, then drops them for an exempt one: skip that
    when a response is exempt from both (ingest's JSON answers, two policies per event)."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if getattr(response, "_csp_exempt", False) and getattr(response, "_csp_exempt_ro", False):
            return response
        return super().process_response(request, response)
