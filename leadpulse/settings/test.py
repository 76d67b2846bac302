"""Test suite: PostgreSQL and Redis by default (the real thing), fast hashing."""

import os
from urllib.parse import urlsplit

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/leadpulse")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
# `make test` runs the in-process test modules in a second pytest session beside the main one (tests/conftest.py):
# that session gets its own test database (the name suffixed) and Redis database (14 instead of 15's).
TEST_SESSION = os.environ.get("LEADPULSE_TEST_SESSION", "")
if TEST_SESSION:
    os.environ["REDIS_URL"] = urlsplit(os.environ["REDIS_URL"])._replace(path="/14").geturl()

from .base import *  # noqa: E402, F403
from .base import INSECURE_DEVELOPMENT_SECRET_KEY, env  # noqa: E402

if TEST_SESSION:
    DATABASES["default"]["NAME"] = f"{DATABASES['default']['NAME']}_{TEST_SESSION}"  # noqa: F405
DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY", default=INSECURE_DEVELOPMENT_SECRET_KEY)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LEADPULSE_RECONCILE_GRACE_SECONDS = env.int("LEADPULSE_RECONCILE_GRACE_SECONDS", default=0)
LEADPULSE_OUTBOX_GRACE_SECONDS = env.int("LEADPULSE_OUTBOX_GRACE_SECONDS", default=0)
LEADPULSE_WEBHOOK_ALLOW_PRIVATE = True
LEADPULSE_WEBHOOK_RETRY_DELAYS = [1, 1, 1, 1]
LEADPULSE_RESCORE_CHUNK = env.int("LEADPULSE_RESCORE_CHUNK", default=10)
LEADPULSE_RESCORE_STALE_SECONDS = env.int("LEADPULSE_RESCORE_STALE_SECONDS", default=2)
# Live tests send hundreds of requests a second from one IP: never limited unless a test lowers a rate.
LEADPULSE_RATE_INGEST_IP = env("LEADPULSE_RATE_INGEST_IP", default="1000000/s")
LEADPULSE_RATE_INGEST_KEY = env("LEADPULSE_RATE_INGEST_KEY", default="1000000/s")
LEADPULSE_RATE_INGEST_BAD_KEY_IP = env("LEADPULSE_RATE_INGEST_BAD_KEY_IP", default="1000000/m")
LEADPULSE_RATE_API_BAD_KEY_IP = env("LEADPULSE_RATE_API_BAD_KEY_IP", default="1000000/m")
LEADPULSE_RATE_LOGIN_IP = env("LEADPULSE_RATE_LOGIN_IP", default="1000000/m")
LEADPULSE_RATE_LOGIN_ACCOUNT = env("LEADPULSE_RATE_LOGIN_ACCOUNT", default="1000000/m")
LEADPULSE_RATE_REGISTER_IP = env("LEADPULSE_RATE_REGISTER_IP", default="1000000/m")
LEADPULSE_RATE_API = env("LEADPULSE_RATE_API", default="1000000/m")
