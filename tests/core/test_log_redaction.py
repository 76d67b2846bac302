"""No credential reaches a log line: `?token=` JWTs (valid or not), keys and Authorization values, in the
logs of real server processes (uvicorn with its access log on; `runembedded`) and in the filter itself."""

import logging
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from rest_framework_simplejwt.tokens import RefreshToken
from uvicorn.logging import AccessFormatter
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from core.logfilters import RedactSecrets, redact
from tests.accounts.factories import project_with_owner
from tests.live import embedded_server, web_server

HELLO = '{"type": "hello", "p'


def socket_attempts(base: str, token: str) -> list[str]:
    """Open the live channel with `?token=`, then with the `bearer.` subprotocol; say how each went."""
    host = urlsplit(base).netloc
    outcomes = []
    for path, protocols in ((f"/ws/project/?token={token}", None), ("/ws/project/", [f"bearer.{token}"])):
        try:
            with connect(f"ws://{host}{path}", origin=f"http://{host}", subprotocols=protocols, proxy=None) as socket:
                outcomes.append(f"accepted {socket.recv(timeout=5)[: len(HELLO)]}")
        except InvalidStatus as refused:
            outcomes.append(f"refused {refused.response.status_code}")
        except ConnectionClosed as closed:  # refused after the handshake, so the page sees why
            outcomes.append(f"closed {closed.rcvd.code if closed.rcvd else None}")
    return outcomes


def forged_tokens() -> list[str]:
    """A well-formed JWT signed with another key, and something that is no JWT at all."""
    forged = jwt.encode({"token_type": "access", "user_id": 1, "exp": 4102444800}, secrets.token_hex(32), "HS256")
    return [forged, f"not-a-jwt-{secrets.token_hex(8)}"]


def assert_logged_and_redacted(log: str, credentials: list[str]) -> None:
    for credential in credentials:
        assert credential not in log
        assert credential[-16:] not in log  # not even its tail
    # the lines are there, with the credentials taken out
    # one valid and two forged tokens: each handshake is accepted (a refusal then closes with 4401)
    assert log.count('"WebSocket /ws/project/?token=[redacted]" [accepted]') == 3
    assert log.count('GET /ws/project/?token=[redacted] HTTP/1.1" 404') == 2


def exercise(base: str, valid: str, forged: list[str]) -> None:
    assert socket_attempts(base, valid) == [f"accepted {HELLO}"] * 2
    for token in forged:
        assert socket_attempts(base, token) == ["closed 4401"] * 2
        assert httpx.get(f"{base}/ws/project/?token={token}").status_code == 404  # plain HTTP to the socket path


@pytest.mark.live
def test_uvicorn_with_its_access_log_on_logs_no_token_or_key(transactional_db, tmp_path: Path):
    _project, owner, write_key = project_with_owner(name="Logs Co")
    valid, forged = str(RefreshToken.for_user(owner).access_token), forged_tokens()
    log_path = tmp_path / "web.log"

    with web_server(log_path) as base:  # the Procfile's command, access log on
        exercise(base, valid, forged)
        assert httpx.get(f"{base}/api/leads?token={valid}&key={write_key}").status_code == 401

    log = log_path.read_text()
    assert_logged_and_redacted(log, [valid, *forged, write_key])
    assert "GET /api/leads?token=[redacted]&key=[redacted] HTTP/1.1" in log


@pytest.mark.live
def test_the_embedded_server_logs_no_token(tmp_path: Path, migrated_sqlite: Path):
    forged = forged_tokens()
    with embedded_server(tmp_path, migrated=migrated_sqlite) as server:
        registered = httpx.post(
            f"{server.base}/api/auth/register",
            json={"email": "logs@example.com", "password": "correct horse battery", "name": "Logs"},
        )
        assert registered.status_code == 201
        valid = registered.json()["access"]
        exercise(server.base, valid, forged)
    assert_logged_and_redacted(server.log.read_text(), [valid, *forged])


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjo3fQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "GET /ws/project/?project=3&token=abc.def-ghi HTTP/1.1",
            "GET /ws/project/?project=3&token=[redacted] HTTP/1.1",
        ),
        ("/oauth?access_token=xyz&state=1", "/oauth?access_token=[redacted]&state=1"),
        (f"subprotocols ['bearer.{JWT}']", "subprotocols ['bearer.[redacted]']"),
        ("key lp_sec_AbC-123_x and lp_pub_zz9", "key lp_sec_[redacted] and lp_pub_[redacted]"),
        ("Authorization: Bearer lp_sec_abc", "Authorization: Bearer [redacted]"),
        ("{'Authorization': 'Basic dXNlcjo='}", "{'Authorization': 'Basic [redacted]'}"),
        ("HTTP_AUTHORIZATION=Token abc123", "HTTP_AUTHORIZATION=Token [redacted]"),
        ("nothing secret here: /api/leads?page=2", "nothing secret here: /api/leads?page=2"),
    ],
)
def test_redact_takes_out_credentials_and_nothing_else(line, expected):
    assert redact(line) == expected


def record(msg, args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, msg, args, exc_info)


def test_the_filter_keeps_formatters_that_read_the_arguments_working():
    line = record('%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5", "GET", f"/ws/project/?token={JWT}", "1.1", 404))
    assert RedactSecrets().filter(line) is True
    formatted = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False).format(line)
    assert formatted == '127.0.0.1:5 - "GET /ws/project/?token=[redacted] HTTP/1.1" 404 Not Found'


def test_the_filter_redacts_secrets_split_between_format_and_arguments_and_tracebacks():
    split = record("token=%s", (secrets.token_hex(8),))
    RedactSecrets().filter(split)
    assert split.getMessage() == "token=[redacted]"
    try:
        raise ValueError(f"bad query token={JWT}")
    except ValueError as error:
        failed = record("request failed", (), (type(error), error, error.__traceback__))
    RedactSecrets().filter(failed)
    assert JWT not in logging.Formatter().format(failed)
    assert "token=[redacted]" in logging.Formatter().format(failed)
