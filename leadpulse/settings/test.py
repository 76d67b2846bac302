"""Test suite: PostgreSQL and Redis by default (the real thing), fast hashing."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/leadpulse")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

from .base import *  # noqa: F403
from .base import INSECURE_DEVELOPMENT_SECRET_KEY, env

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
