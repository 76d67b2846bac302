from functools import cache
from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

SDK_PATH = Path(__file__).resolve().parent / "sdk" / "ls.js"


@cache
def _sdk_source() -> bytes:
    return SDK_PATH.read_bytes()


@require_GET
def sdk_script(request: HttpRequest) -> HttpResponse:
    """Serve the browser SDK; any site may load it (CORS is open on /sdk/)."""
    response = HttpResponse(_sdk_source(), content_type="application/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=300"
    return response
