"""A real HTTP receiver on 127.0.0.1 for webhook tests: records requests, answers as scripted."""

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    # status codes to answer in order; the last one repeats
    script: list[int] = field(default_factory=lambda: [200])
    body: bytes | None = None  # the response body (default: "ok" or "nope")
    reason: str | None = None  # the status line's reason phrase (default: the standard one)
    delay: float = 0.0  # seconds to wait before answering

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def receiver_start() -> Receiver:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.script.pop(0) if len(receiver.script) > 1 else receiver.script[0]
            time.sleep(receiver.delay)
            body = receiver.body if receiver.body is not None else b"ok" if status < 300 else b"nope"
            try:
                self.send_response(status, receiver.reason)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(server=server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver
