"""The API's one error shape also covers what no DRF view answers: unknown URLs and crashes."""

import json

import pytest
from django.test import Client, RequestFactory

from leadpulse.views import server_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/no-such-endpoint"),
        ("patch", "/api/projects/not-an-id"),  # the route's <int:> converter does not match
        ("delete", "/api/projects/1/secret-keys/-1"),
        ("post", "/v1/no-such-call"),
    ],
)
def test_unknown_api_urls_are_404_in_the_error_shape(tenant, method, path):
    response = getattr(tenant.client, method)(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}


def test_unknown_pages_stay_html():
    response = Client().get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_a_crash_under_the_api_is_500_in_the_error_shape_and_pages_get_html():
    api = server_error(RequestFactory().get("/api/leads"))
    assert api.status_code == 500
    assert json.loads(api.content)["error"]["code"] == "server_error"
    page = server_error(RequestFactory().get("/leads/"))
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")


def test_database_unavailable_is_503_with_retry_after_in_the_error_shape_for_the_api_and_pages():
    from django.db import OperationalError

    from core.errors import DatabaseUnavailableMiddleware, api_exception_handler

    error = OperationalError("couldn't get a connection after 3.00 sec")
    api = api_exception_handler(error, {"request": RequestFactory().post("/api/events/batch")})
    assert api is not None and api.status_code == 503 and api["Retry-After"].isdigit()
    assert api.data["error"]["code"] == "database_unavailable" and api.data["error"]["fields"] == {}

    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    plain_api = middleware.process_exception(RequestFactory().get("/v1/nowhere"), error)
    assert plain_api.status_code == 503 and json.loads(plain_api.content)["error"]["code"] == "database_unavailable"
    page = middleware.process_exception(RequestFactory().get("/leads/"), error)
    assert page.status_code == 503 and page["Content-Type"].startswith("text/html") and page["Retry-After"]
    assert middleware.process_exception(RequestFactory().get("/leads/"), ValueError("a bug")) is None
