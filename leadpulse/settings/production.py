"""Production, the default of manage.py, ASGI and Celery: secrets have no default, PostgreSQL
and Redis are required, HTTPS only. `manage.py check --deploy` passes with no warning.

A missing or known secret key is an ImproperlyConfigured error whose one-line message
`leadpulse.boot.settings_load` prints before the process exits.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import INSECURE_DEVELOPMENT_SECRET_KEY, env, logging_config, postgres_database

GENERATE_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"


def secret_key(value: str) -> str:
    """The production secret key: set, not the public development one, as strong as `check --deploy` wants."""
    if not value:
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is not set: production settings need one (generate it with {GENERATE_KEY}); "
            "development settings are DJANGO_SETTINGS_MODULE=leadpulse.settings.local, as the embedded `make run` uses."
        )
    if value == INSECURE_DEVELOPMENT_SECRET_KEY:
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is the public development key: set a secret one (generate it with {GENERATE_KEY})."
        )
    # Django's own bar (security.W009): anyone can forge sessions and JWTs with a guessable key.
    if len(value) < 50 or len(set(value)) < 5 or value.startswith("django-insecure-"):
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is too weak: use at least 50 random characters (generate it with {GENERATE_KEY})."
        )
    return value


DEBUG = False
SECRET_KEY = secret_key(env("DJANGO_SECRET_KEY", default=""))
DATABASES = {"default": postgres_database(env("DATABASE_URL"))}
if not env("REDIS_URL", default=""):
    raise ImproperlyConfigured("REDIS_URL is not set: production needs Redis (broker, channel layer, cache).")

# --- HTTPS: behind a TLS-terminating proxy that sets X-Forwarded-Proto ---------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Load-balancer and Prometheus probes often speak plain HTTP to the node (patterns match the path without its "/").
SECURE_REDIRECT_EXEMPT = env.list("DJANGO_SECURE_REDIRECT_EXEMPT", default=[r"^api/health$", r"^metrics$"])
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
LOGGING = logging_config(env("LOG_FORMAT", default="json"))
