"""Query-string parameters: empty is absent, anything malformed is an error naming the parameter."""

from datetime import UTC, datetime

import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from core.errors import ApplicationError
from core.queries import query_datetime, query_id, query_int


def request_with(**params: str) -> Request:
    return Request(APIRequestFactory().get("/", params))


def test_query_int_defaults_when_empty_and_bounds_otherwise():
    assert query_int(request_with(limit=" "), "limit", default=7, minimum=1, maximum=10) == 7
    assert query_int(request_with(limit="10"), "limit", default=7, minimum=1, maximum=10) == 10
    with pytest.raises(ApplicationError, match="between 1 and 10"):
        query_int(request_with(limit="11"), "limit", default=7, minimum=1, maximum=10)
    with pytest.raises(ApplicationError, match="integer"):
        query_int(request_with(limit="ten"), "limit", default=7, minimum=1, maximum=10)


def test_query_id_takes_ascii_digits_that_fit_a_bigint():
    assert query_id(request_with(), "leadId") is None
    assert query_id(request_with(leadId="42"), "leadId") == 42
    for raw in ("-1", "٣", "1" * 19):
        with pytest.raises(ApplicationError, match="integer"):
            query_id(request_with(leadId=raw), "leadId")


def test_query_datetime_is_utc():
    assert query_datetime(request_with(), "since") is None
    assert query_datetime(request_with(since="2026-01-31T12:00:00"), "since") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert query_datetime(request_with(since="2026-01-31T13:00:00+01:00"), "since") == datetime(
        2026, 1, 31, 12, tzinfo=UTC
    )
    with pytest.raises(ApplicationError, match="ISO-8601"):
        query_datetime(request_with(since="yesterday"), "since")
