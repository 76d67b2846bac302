"""Keep credentials out of log lines, whoever wrote them (a library's access log, an error message):
JWTs, `token=`/`key=`/`secret=`/`password=` values, API keys and Authorization values.

`RedactSecrets` rewrites a record before any formatter (plain or JSON) sees it; LOGGING puts it
on every handler, and uvicorn's loggers (whose WebSocket lines carry the query string, `?token=`
included, even without an access log) are routed through those handlers.
"""

import logging
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"
_PATTERNS = [
    # `token=…`, `access_token=…`, `key=…`, `secret=…`, `password=…` in a query string or a message
    (
        re.compile(r"(?i)\b((?:[a-z]+_)?token|api_?key|key|secret|password)=[^&\s\"'<>#]+"),
        rf"\g<1>={REDACTED}",
    ),
    # any JWT (its header is base64url JSON, so it starts `eyJ`), e.g. in a `bearer.<jwt>` subprotocol
    (re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*"), REDACTED),
    # project API keys (write keys are public, secret keys are not; neither belongs in logs)
    (re.compile(r"\b(lp_(?:pub|sec)_)[\w-]+"), rf"\g<1>{REDACTED}"),
    # Authorization header values, with or without their scheme
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token)\s+)?)[^\s\"',;}]+"),
        rf"\g<1>{REDACTED}",
    ),
]


def redact(text: str) -> str:
    """`text` with every credential it holds replaced by `[redacted]`."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactSecrets(logging.Filter):
    """Redact the record's arguments, message and traceback in place; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            # Argument by argument first, so formatters that read `args` (uvicorn's access log) still work.
            if isinstance(record.args, tuple):
                record.args = tuple(_redact_value(value) for value in record.args)
            elif isinstance(record.args, Mapping):
                record.args = {key: _redact_value(value) for key, value in record.args.items()}
            message = record.getMessage()
            if redact(message) != message:  # a secret assembled from the format and its arguments
                record.msg, record.args = redact(message), ()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
            if record.stack_info:
                record.stack_info = redact(record.stack_info)
        except Exception:  # noqa: S110 (a record that cannot be formatted is the formatter's to report)
            pass
        return True
