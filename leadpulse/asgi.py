"""ASGI entry point: HTTP through Django's WSGI handler on a pool of threads, WebSockets through Channels."""

from django.core.asgi import get_asgi_application

from leadpulse.boot import settings_load

settings_load()
django_asgi_app = get_asgi_application()  # sets Django up (and stays available, e.g. for tests)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from leadpulse.http import WsgiOnThreads  # noqa: E402
from leadpulse.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # every view is synchronous: see leadpulse/http.py for what Django's ASGI handler would cost
        "http": WsgiOnThreads(get_wsgi_application(), threads=settings.LEADPULSE_HTTP_THREADS),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
