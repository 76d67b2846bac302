"""HTTP under the ASGI server: Django's WSGI handler on a fixed pool of threads.

Every view of ours is synchronous. Django's own ASGI handler runs each request through
asgiref: a new thread per request (`ThreadSensitiveContext`), the middleware chain adapted
to the event loop and back, request signals sent through `sync_to_async`. That costs more
CPU than a small view itself (bench/ingest.py's bare view: about twice as much per request).
Here the event loop only reads the body and writes the response; the whole request, from
the first middleware to the last byte of a non-streaming response, runs in one pool thread,
as under a WSGI server. WebSockets stay on Channels (leadpulse/asgi.py).
"""

import asyncio
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from tempfile import SpooledTemporaryFile
from typing import Any

from django.conf import settings

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


SPECIAL_HEADERS = {"content-length": "CONTENT_LENGTH", "content-type": "CONTENT_TYPE"}


def wsgi_environ(scope: Scope, body: Any, body_size: int) -> dict[str, Any]:
    """The WSGI environ of an ASGI HTTP scope (PEP 3333 strings: bytes decoded as latin-1)."""
    root_path = scope.get("root_path", "")
    path = scope["path"]
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root_path.encode().decode("latin-1"),
        "PATH_INFO": path.encode().decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if client := scope.get("client"):
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
    for raw_name, raw_value in scope.get("headers", []):  # named and joined as Django's ASGI handler does
        name = raw_name.decode("latin-1").lower()
        key = SPECIAL_HEADERS.get(name) or "HTTP_" + name.upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if key == "HTTP_COOKIE":
            value = value.rstrip("; ")
            if key in environ:
                value = f"{environ[key]}; {value}"
        elif key in environ:
            value = f"{environ[key]},{value}"
        environ[key] = value
    # A chunked body has no Content-Length: give its real size, or Django would read none of it.
    environ.setdefault("CONTENT_LENGTH", str(body_size))
    return environ


class WsgiOnThreads:
    """An ASGI HTTP application that serves a WSGI application (Django's) from `threads` threads."""

    def __init__(self, app: WsgiApp, *, threads: int) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"WsgiOnThreads serves HTTP, not {scope['type']!r}")
        # As Django's ASGI handler: the whole body first, spooled to disk past the upload memory limit.
        with SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b") as body:
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # the client left before its request was complete
                chunk = message.get("body", b"")
                body.write(chunk)
                size += len(chunk)
                if not message.get("more_body", False):
                    break
            body.seek(0)
            environ, loop = wsgi_environ(scope, body, size), asyncio.get_running_loop()
            response = await loop.run_in_executor(self.executor, self.respond, environ, send, loop)
        if response is not None:  # not streamed: sent from here, in two messages
            start, content = response
            await send(start)
            await send({"type": "http.response.body", "body": content})

    def respond(
        self, environ: dict[str, Any], send: Send, loop: asyncio.AbstractEventLoop
    ) -> tuple[Message, bytes] | None:
        """Run the request in this pool thread; the response to send, or None when it was streamed from here."""
        start: Message = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            start.update(
                type="http.response.start",
                status=int(status.split(" ", 1)[0]),
                headers=[(name.lower().encode("latin-1"), value.strip().encode("latin-1")) for name, value in headers],
            )

        result = self.app(environ, start_response)
        try:
            if not getattr(result, "streaming", False):
                return start, b"".join(result)

            def send_now(message: Message) -> None:  # waits for each part to be written: back-pressure
                asyncio.run_coroutine_threadsafe(send(message), loop).result()

            send_now(start)
            for chunk in result:
                if chunk:
                    send_now({"type": "http.response.body", "body": chunk, "more_body": True})
            send_now({"type": "http.response.body", "body": b""})
            return None
        finally:
            # WSGI's close() sends Django's request_finished: the database connection goes back to the pool.
            close = getattr(result, "close", None)
            if close is not None:
                close()
