"""HTTP under the ASGI server (leadpulse/http.py): Django's WSGI handler on a pool of threads."""

import json
import threading

import pytest
from asgiref.sync import async_to_sync
from django.core.signals import request_finished
from django.core.wsgi import get_wsgi_application

from ingest.models import Event
from leadpulse.http import WsgiOnThreads, wsgi_environ
from tests.accounts.factories import project_with_owner


def http_scope(method, path, headers=(), query=b""):
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("203.0.113.7", 51000),
        "server": ("testserver", 80),
    }


def call(app, scope, body_parts=(b"",), *, disconnect_first=False):
    """Run one request through the ASGI app; the messages it sent."""
    incoming = [{"type": "http.disconnect"}] if disconnect_first else []
    parts = list(body_parts)
    incoming += [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    sent = []

    async def receive():
        return incoming.pop(0)

    async def send(message):
        sent.append(message)

    async_to_sync(app)(scope, receive, send)
    return sent


def status_and_body(sent):
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.fixture
def app():
    app = WsgiOnThreads(get_wsgi_application(), threads=2)
    yield app
    app.executor.shutdown()


def test_a_request_runs_in_a_pool_thread_and_ends_by_returning_its_database_connection(app, transactional_db):
    finished = []

    def on_finished(**kwargs):
        finished.append(threading.current_thread().name)

    request_finished.connect(on_finished)
    try:
        status, _ = status_and_body(call(app, http_scope("GET", "/api/health")))
    finally:
        request_finished.disconnect(on_finished)

    assert status in (200, 503)
    # request_finished (which closes the request's database connection) ran, in the request's own thread
    assert len(finished) == 1 and finished[0].startswith("http")


def test_a_chunked_body_without_content_length_is_read_whole(app, transactional_db):
    _project, _owner, write_key = project_with_owner(name="Chunked")
    body = json.dumps({"eventType": "signup", "leadId": "chunky", "eventId": "chunked-1"}).encode()
    headers = [(b"content-type", b"application/json"), (b"x-api-key", write_key.encode())]

    sent = call(app, http_scope("POST", "/api/events", headers), [body[:10], body[10:30], body[30:]])

    assert status_and_body(sent)[0] == 202
    assert Event.objects.filter(event_id="chunked-1").exists()


def test_a_streamed_response_is_sent_part_by_part_then_closed():
    closed = []

    class Streamed:
        streaming = True

        def __iter__(self):
            yield from (b"a,b\n", b"", b"1,2\n")

        def close(self):
            closed.append(threading.current_thread().name)

    def wsgi(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/csv"), ("Set-Cookie", " c=1; Path=/")])
        return Streamed()

    app = WsgiOnThreads(wsgi, threads=1)
    sent = call(app, http_scope("GET", "/export.csv"))
    app.executor.shutdown()

    assert sent[0] == {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/csv"), (b"set-cookie", b"c=1; Path=/")],
    }
    assert [m["body"] for m in sent[1:]] == [b"a,b\n", b"1,2\n", b""]
    assert [m.get("more_body", False) for m in sent[1:]] == [True, True, False]
    assert len(closed) == 1 and closed[0].startswith("http")


def test_a_client_gone_before_its_body_is_complete_runs_nothing():
    calls = []

    def wsgi(environ, start_response):
        calls.append(environ)
        start_response("200 OK", [])
        return [b""]

    app = WsgiOnThreads(wsgi, threads=1)
    sent = call(app, http_scope("POST", "/api/events"), disconnect_first=True)
    app.executor.shutdown()

    assert sent == [] and calls == []


def test_the_environ_names_and_joins_headers_as_djangos_asgi_handler_does():
    scope = http_scope(
        "GET",
        "/leads/é",
        headers=[
            (b"content-type", b"text/plain"),
            (b"accept", b"text/html"),
            (b"accept", b"application/json"),
            (b"cookie", b"a=1; "),
            (b"cookie", b"b=2"),
            (b"x-forwarded-for", b"198.51.100.1"),
        ],
        query=b"q=%C3%A9&page=2",
    )

    environ = wsgi_environ(scope, body=None, body_size=0)

    assert environ["PATH_INFO"] == "/leads/é".encode().decode("latin-1")
    assert environ["QUERY_STRING"] == "q=%C3%A9&page=2"
    assert environ["CONTENT_TYPE"] == "text/plain" and environ["CONTENT_LENGTH"] == "0"
    assert environ["HTTP_ACCEPT"] == "text/html,application/json"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_X_FORWARDED_FOR"] == "198.51.100.1"
    assert environ["REMOTE_ADDR"] == "203.0.113.7" and environ["SERVER_NAME"] == "testserver"
