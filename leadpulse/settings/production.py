"""Production: secrets have no default, PostgreSQL and Redis are required."""

from .base import *  # noqa: F403
from .base import env, logging_config, postgres_database

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")
DATABASES = {"default": postgres_database(env("DATABASE_URL"))}
if not env("REDIS_URL", default=""):
    raise RuntimeError("REDIS_URL is required in production (broker, channel layer, cache).")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
LOGGING = logging_config(env("LOG_FORMAT", default="json"))
