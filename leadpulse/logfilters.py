"""Keep tokens out of log lines, whoever wrote them (a library's access log, an error message).

A minimal stand-in: another change of issue 11 brings the project's redaction filter; where
both exist, keep theirs and drop this one.
"""

import logging
import re

# `token=…`, `access_token=…`, `key=…`, `secret=…`, `password=…` in a query string or a message
SECRET_PAIR_RE = re.compile(r"(?i)\b((?:access_|refresh_)?token|api_?key|key|secret|password)=([^&\s\"'<>]+)")


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = SECRET_PAIR_RE.sub(r"\1=[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
