"""Settings shared by every environment, read from one `environ.Env()`.

`DATABASE_URL` selects PostgreSQL (absent: SQLite in WAL mode) and `REDIS_URL`
selects Redis for the Celery broker, the channel layer and the cache (absent: the
embedded, single-process mode of DESIGN.md).
"""

import logging
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Public, so only the development and test settings fall back to it; production refuses it.
INSECURE_DEVELOPMENT_SECRET_KEY = "insecure-development-key-only-for-make-run-and-tests-change-me"  # noqa: S105
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "accounts.apps.AdminConfig",  # django.contrib.admin, with rate-limited sign-in
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "django_celery_beat",
    "channels",
    "corsheaders",
    "social_django",
    "django_ratelimit",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "core",
    "leadpulse",
    "accounts",
    "ingest",
    "scoring",
    "automations",
    "companies",
    "predictions",
]

MIDDLEWARE = [
    "core.logs.RequestLogMiddleware",  # first: its request id and duration cover everything below
    "django.middleware.security.SecurityMiddleware",
    "core.csp.CSPMiddleware",  # django-csp's, building no policy for exempt responses
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.errors.DatabaseUnavailableMiddleware",  # 503 + Retry-After, not 500, while the database is away
]

ROOT_URLCONF = "leadpulse.urls"
ASGI_APPLICATION = "leadpulse.asgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "leadpulse.dashboard.dashboard_context",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
SQLITE_PATH = env("LEADPULSE_SQLITE_PATH", default=str(BASE_DIR / "var" / "leadpulse.sqlite3"))


def postgres_database(url: str) -> dict:
    """PostgreSQL through a per-process psycopg pool.

    Under ASGI every request may run in a different thread, and Django's persistent
    connections are per thread: they pile up until PostgreSQL refuses clients (Django
    says to disable them under ASGI). A bounded pool reuses connections instead.
    """
    database = environ.Env.db_url_config(url)
    database["CONN_MAX_AGE"] = 0
    # The pool checks a connection before handing it out (`core.dbcheck`, through our backend: a round
    # trip only when the server sent something), so one broken by a database restart is replaced, not
    # used; broken ones returned are dropped.
    database["ENGINE"] = "core.postgresql"
    database["CONN_HEALTH_CHECKS"] = True
    # Django disables psycopg's prepared statements for PgBouncer's sake; the few statements run through
    # `core.sql.prepared_cursor` use them (prepared at their fifth run on a connection). Behind a pooler in
    # transaction mode that does not track them (PgBouncer before 1.21), set this to false.
    prepared = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
    database.setdefault("OPTIONS", {})["prepare_threshold"] = 5 if prepared else None
    database["OPTIONS"]["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN", default=1),
        "max_size": env.int("DATABASE_POOL_MAX", default=8),
        "timeout": env.int("DATABASE_POOL_TIMEOUT", default=10),
    }
    return database


if env("DATABASE_URL", default=""):
    DATABASES = {"default": postgres_database(env("DATABASE_URL"))}
else:
    Path(SQLITE_PATH).parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {
                # IMMEDIATE makes every atomic block take the write lock up front, so the
                # web, worker and beat threads queue instead of failing on upgrade.
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

# Threads per web process serving HTTP requests (leadpulse/http.py): requests beyond them wait their turn.
LEADPULSE_HTTP_THREADS = env.int("LEADPULSE_HTTP_THREADS", default=8)

# --- Redis: broker, channel layer, cache ----------------------------------
REDIS_URL = env("REDIS_URL", default="")
EMBEDDED = not REDIS_URL
# django-ratelimit 4.1 does not list Django's own Redis cache, which increments atomically.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]

if REDIS_URL:
    # Bounded waits: a Redis that hangs (not refuses) must slow ingest down, never stop it.
    REDIS_TIMEOUTS = {"socket_connect_timeout": 1, "socket_timeout": 1}
    CACHES = {
        "default": {
            # Django's, with one client per process (not per ASGI request) and one round trip per incr
            "BACKEND": "core.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": REDIS_TIMEOUTS,
        }
    }
    # Not the cache's 1 s timeouts. channels-redis waits for messages with BZPOPMIN blocking 5 s,
    # so a read timeout at or under that (redis-py's default is 5 s) fails every idle receive and
    # kills the WebSocket. No read timeout at all: with one, redis-py sends through
    # asyncio.wait_for, which on Python 3.11 can swallow a cancellation, and a consumer whose
    # socket closed then never ends. A live Redis answers BZPOPMIN every 5 s; a dead one is
    # found by TCP keepalive (about 45 s), idle connections are pinged before reuse, and a
    # dropped connection is retried. (The health-check interval is a setting so that the live
    # socket test can make an idle socket outlive several of them in seconds, not minutes.)
    CHANNEL_LAYER_REDIS = {
        "socket_timeout": None,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": env.int("LEADPULSE_CHANNEL_LAYER_HEALTH_CHECK_SECONDS", default=30),
        "retry": Retry(ExponentialWithJitterBackoff(cap=2, base=0.1), 3, supported_errors=(RedisConnectionError,)),
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, **CHANNEL_LAYER_REDIS}], "prefix": "leadpulse"},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CELERY_BROKER_URL = "memory://"
    # Embedded mode is one process, so a per-process cache counts rate limits correctly.
    SILENCED_SYSTEM_CHECKS.append("django_ratelimit.E003")

# --- Celery: at-least-once delivery, idempotent tasks ---------------------
CELERY_TASK_ACKS_LATE = True
# Celery's Django fix-up closes a prefork child's database connections and its whole psycopg pool around every
# task unless told to reuse them: ours only returns the connection to the pool (leadpulse/celery.py), as Django
# does after each request, and the pool replaces broken or old ones (`max_lifetime`).
CELERY_DB_REUSE_MAX = 10**9
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Seconds before a message a worker took and never acked (the worker died whole) goes back to the queue; a
# worker sweeps for them when it starts. A task running longer than this is sent twice (the tests shorten it).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_BROKER_VISIBILITY_TIMEOUT", default=3600)}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"

# --- DRF / JWT ------------------------------------------------------------
REST_FRAMEWORK = {
    # secret keys first: JWT would try to parse an `lp_sec_` bearer token and fail
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.SecretKeyAuthentication",
        "accounts.authentication.UserJWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's JSON parser, but no NaN/Infinity/1e400 (jsonb refuses them) and no stack-deep nesting
    "DEFAULT_PARSER_CLASSES": ["core.jsonbody.JsonBodyParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "core.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=60)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=14)),
    "AUTH_HEADER_TYPES": ("Bearer",),
    # A refresh token works once (each use returns a new one) and `POST /api/auth/logout` spends it.
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    # Every token carries a digest of the password hash: a password change or reset refuses all earlier tokens.
    "CHECK_REVOKE_TOKEN": True,
    "CHECK_USER_IS_ACTIVE": True,
}

# OpenAPI 3 at /api/schema/, Swagger UI at /api/docs/ (assets from drf-spectacular-sidecar, no CDN).
SPECTACULAR_SETTINGS = {
    "TITLE": "LeadPulse API",
    "DESCRIPTION": (
        "Real-time lead scoring. Ingest endpoints take a project's public **write key**; "
        "everything else takes a user's JWT (`POST /api/auth/login`) or a project's **secret key** "
        '(`Authorization: Bearer lp_sec_…`). Every error is `{"error": {"code", "message", "fields"}}`. '
        "An empty query parameter is the same as leaving it out."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["core.openapi.canonical_endpoints"],
    # a member's role (owner, admin, member) and what an invitation may grant (admin, member)
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "accounts.models.Membership.Role",
        "InvitationRoleEnum": "accounts.models.INVITATION_ROLES",
        "MatrixCellEnum": "scoring.engine.MATRIX_CELLS",
    },
    # Write keys authenticate ingest only; they are not DRF authenticators, so they are declared here.
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "writeKeyHeader": {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Key",
                "description": "A project's public write key (`lp_pub_…`).",
            },
            "writeKeyBasic": {
                "type": "http",
                "scheme": "basic",
                "description": "Segment style: the write key as the user name, no password.",
            },
        }
    },
}

# --- Internationalisation, static -----------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves static files under any ASGI server; finders let it work before (or
# without) collectstatic, which the Procfile's release step runs for production.
WHITENOISE_USE_FINDERS = True

# --- Sign-in: sessions for the dashboard, JWT for the API, Google when configured ----------
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "project_overview"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTHENTICATION_BACKENDS = [
    "social_core.backends.google.GoogleOAuth2",
    "django.contrib.auth.backends.ModelBackend",
]
SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = env("GOOGLE_OAUTH2_KEY", default="")
SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = env("GOOGLE_OAUTH2_SECRET", default="")
SOCIAL_AUTH_USER_MODEL = "accounts.User"
SOCIAL_AUTH_USERNAME_IS_FULL_EMAIL = True
SOCIAL_AUTH_LOGIN_REDIRECT_URL = "/"
SOCIAL_AUTH_PIPELINE = (
    "social_core.pipeline.social_auth.social_details",
    "social_core.pipeline.social_auth.social_uid",
    "social_core.pipeline.social_auth.auth_allowed",
    "social_core.pipeline.social_auth.social_user",
    "social_core.pipeline.social_auth.associate_by_email",
    "social_core.pipeline.user.create_user",
    "accounts.social.project_for_new_user",
    "social_core.pipeline.social_auth.associate_user",
    "social_core.pipeline.social_auth.load_extra_data",
    "social_core.pipeline.user.user_details",
)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="LeadPulse <noreply@localhost>")

# --- Content-Security-Policy (django-csp), in every environment ------------------------------
# Scripts and styles come from our own origin only: no inline scripts, handlers or style
# attributes. The one inline style left is a pygal chart's <style>, which carries the
# request's nonce. 'self' covers the page's own ws:/wss: origin (CSP 3), so the live
# socket needs no scheme-wide source. Google sign-in redirects the form to Google.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],  # Swagger UI draws its icons from data: URIs
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF, *(["https://accounts.google.com"] if SOCIAL_AUTH_GOOGLE_OAUTH2_KEY else [])],
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- CORS: only the public ingest surface (write key, no cookies) is open to any origin.
CORS_URLS_REGEX = r"^/(v1/|api/v1/|api/ingest/|api/events(/batch)?$|sdk/)"
CORS_ALLOW_ALL_ORIGINS = True
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_HEADERS = ["content-type", "content-encoding", "authorization", "x-api-key"]
CORS_ALLOW_METHODS = ["GET", "POST", "OPTIONS"]
CORS_PREFLIGHT_MAX_AGE = 86400

# --- Ingest limits (bytes) ------------------------------------------------
LEADPULSE_MAX_EVENT_BYTES = 32 * 1024
LEADPULSE_MAX_REQUEST_BYTES = 500 * 1024
LEADPULSE_MAX_BATCH_EVENTS = 500
# Django refuses to read larger bodies; one byte above ours so our 413 wins.
DATA_UPLOAD_MAX_MEMORY_SIZE = LEADPULSE_MAX_REQUEST_BYTES + 1

# --- Rate limits (django-ratelimit, leadpulse/ratelimits.py) -------------------------------
# "count/period" with period s, m, h or d ("100/5m"); an empty string turns a limit off.
# Ingest: requests per client IP before the key is checked (invalid keys count), then
# events per write key (a batch of 500 spends 500; `Project.ingest_rate_per_second` overrides it).
LEADPULSE_RATE_INGEST_IP = env("LEADPULSE_RATE_INGEST_IP", default="2000/s")
LEADPULSE_RATE_INGEST_KEY = env("LEADPULSE_RATE_INGEST_KEY", default="5000/s")
# Failed key lookups per client IP, apart and tight: unknown write keys at ingest; unknown secret keys and
# forged JWTs at the API. Past it, 429 with no lookup; keys known valid (cached) still work from that IP.
LEADPULSE_RATE_INGEST_BAD_KEY_IP = env("LEADPULSE_RATE_INGEST_BAD_KEY_IP", default="30/m")
LEADPULSE_RATE_API_BAD_KEY_IP = env("LEADPULSE_RATE_API_BAD_KEY_IP", default="30/m")
# Sign-in, against brute force: every attempt counts, per IP and per account (email).
LEADPULSE_RATE_LOGIN_IP = env("LEADPULSE_RATE_LOGIN_IP", default="20/m")
LEADPULSE_RATE_LOGIN_ACCOUNT = env("LEADPULSE_RATE_LOGIN_ACCOUNT", default="10/m")
LEADPULSE_RATE_REGISTER_IP = env("LEADPULSE_RATE_REGISTER_IP", default="20/m")
# Password-reset mail: requests per IP as for sign-in; per address tighter, so no one floods a mailbox.
LEADPULSE_RATE_PASSWORD_RESET_ACCOUNT = env("LEADPULSE_RATE_PASSWORD_RESET_ACCOUNT", default="5/h")
# The JWT / secret-key API, per user or secret key.
LEADPULSE_RATE_API = env("LEADPULSE_RATE_API", default="600/m")
# Behind a proxy, name the META key holding the client IP (e.g. HTTP_X_REAL_IP); default REMOTE_ADDR.
RATELIMIT_IP_META_KEY = env("RATELIMIT_IP_META_KEY", default="") or None

# --- Pipeline -------------------------------------------------------------
# An event still unprocessed this long after receipt gets its lead re-enqueued.
LEADPULSE_RECONCILE_GRACE_SECONDS = env.int("LEADPULSE_RECONCILE_GRACE_SECONDS", default=30)
# How long a queued scoring wake-up counts as pending so ingest does not send another.
LEADPULSE_SCORE_PENDING_SECONDS = env.int("LEADPULSE_SCORE_PENDING_SECONDS", default=120)
# Scoring batches: leads claimed at once, events of one lead folded per batch, seconds a task drains.
LEADPULSE_SCORE_BATCH = env.int("LEADPULSE_SCORE_BATCH", default=200)
LEADPULSE_SCORE_CHUNK_EVENTS = env.int("LEADPULSE_SCORE_CHUNK_EVENTS", default=5000)
# Store a `rule` history row per event under every scoring model, not only the primary one (the others' rows are
# otherwise made again from the log when read: the same rows, at a fraction of the scoring cost).
LEADPULSE_HISTORY_ALL_MODELS = env.bool("LEADPULSE_HISTORY_ALL_MODELS", default=False)
LEADPULSE_SCORE_DRAIN_SECONDS = env.float("LEADPULSE_SCORE_DRAIN_SECONDS", default=30)
# A draining task takes a batch at most this often unless the last one was full (and looks once more this long after
# finding the set empty): steady traffic is scored in batches of what arrives meanwhile (a batch costs about as much
# as one lead) instead of a task or a batch per event. At most this much is added to an event's ingest→scored latency
# under steady traffic; the first event after a quiet spell is scored at once. 0 turns the pacing off.
LEADPULSE_SCORE_LINGER_SECONDS = env.float("LEADPULSE_SCORE_LINGER_SECONDS", default=0.1)
# Re-score jobs refold this many leads per task; a job without progress this long is resumed.
LEADPULSE_RESCORE_CHUNK = env.int("LEADPULSE_RESCORE_CHUNK", default=200)
# Tasks one re-score job is split into (slices of its leads), so that many worker processes share it:
# about the worker processes there are (the Procfile's worker runs 2).
LEADPULSE_RESCORE_SLICES = env.int("LEADPULSE_RESCORE_SLICES", default=2)
LEADPULSE_RESCORE_STALE_SECONDS = env.int("LEADPULSE_RESCORE_STALE_SECONDS", default=120)
LEADPULSE_WRITE_KEY_CACHE_SECONDS = 60

# --- Outbound webhooks ----------------------------------------------------------------
# Private/loopback targets are refused unless allowed (tests, embedded mode); link-local
# (cloud metadata) and non-http(s) are refused always.
LEADPULSE_WEBHOOK_ALLOW_PRIVATE = env.bool("LEADPULSE_WEBHOOK_ALLOW_PRIVATE", default=False)
# Waits before attempts 2..5: five attempts over about an hour.
LEADPULSE_WEBHOOK_RETRY_DELAYS = [60, 300, 900, 2400]
LEADPULSE_WEBHOOK_TIMEOUT_SECONDS = 10
# how long an attempt holds its delivery (a worker killed mid-POST holds it no longer): a task's whole time limit
LEADPULSE_WEBHOOK_CLAIM_SECONDS = CELERY_TASK_TIME_LIMIT
# the outbox sweep re-sends a delivery or execution still unsent after this long (its send lost with a killed worker)
LEADPULSE_OUTBOX_GRACE_SECONDS = env.int("LEADPULSE_OUTBOX_GRACE_SECONDS", default=60)
LEADPULSE_WEBHOOK_DISABLE_AFTER = env.int("LEADPULSE_WEBHOOK_DISABLE_AFTER", default=50)
LEADPULSE_PUBLIC_URL = env("LEADPULSE_PUBLIC_URL", default="http://127.0.0.1:8000")
# Emails a project's automations may send a (UTC) day, one per recipient, confirmation links included.
LEADPULSE_EMAIL_DAILY_BUDGET = env.int("LEADPULSE_EMAIL_DAILY_BUDGET", default=200)
LEADPULSE_WORKER_HEARTBEAT_SECONDS = 10

# --- Metrics (GET /metrics, leadpulse/metrics.py) and logs (leadpulse/logs.py) --------------
# Scrapes need `Authorization: Bearer <token>` or a peer address in one of the CIDRs; neither → 404.
LEADPULSE_METRICS_TOKEN = env("LEADPULSE_METRICS_TOKEN", default="")
LEADPULSE_METRICS_ALLOW = env.list("LEADPULSE_METRICS_ALLOW", default=[])


def logging_config(log_format: str) -> dict:
    """Plain lines for people (development, tests) or one JSON object per line (production)."""
    # Off only when uvicorn configured its logging before loading us and left its access log without a handler
    # (`--no-access-log`); on when it has one, or when uvicorn starts after Django (`runembedded`).
    configured = "uvicorn.access" in logging.root.manager.loggerDict
    uvicorn_access = not configured or bool(logging.getLogger("uvicorn.access").handlers)
    formatters = {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "core.logs.JsonFormatter", "fmt": "{asctime}{levelname}{name}{message}", "style": "{"},
    }
    if log_format not in formatters:
        raise ValueError(f"LOG_FORMAT must be plain or json, not {log_format!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "core.logs.ContextFilter"},
            "redact": {"()": "core.logfilters.RedactSecrets"},
        },
        "formatters": {log_format: formatters[log_format]},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": log_format, "filters": ["context", "redact"]}
        },
        "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # uvicorn configured its own handlers before Django loaded: route its lines through ours.
            # Its access log writes query strings: production drops it (leadpulse.request replaces it);
            # development keeps it unless uvicorn was started without it (`--no-access-log`, as the Procfile
            # does): naming our handler here used to switch it back on.
            "uvicorn": {"handlers": ["console"], "propagate": False},
            "uvicorn.access": {
                "handlers": ["console"] if log_format == "plain" and uvicorn_access else [],
                "propagate": False,
            },
        },
    }


LOGGING = logging_config(env("LOG_FORMAT", default="plain"))

# Called with `project=` when a project is created (keeps accounts free of upward imports).
LEADPULSE_PROJECT_PROVISIONERS = ["scoring.services.project_rules_seed"]
# Asked (and cached) before a lead change is handed to automations: `f(project_id=) -> bool`.
LEADPULSE_LEAD_LISTENERS = "automations.selectors.project_has_lead_listeners"
# Asked by /metrics at scrape time: `f() -> {"n": unscored events, "oldest": earliest received_at}`.
LEADPULSE_BACKLOG = "ingest.selectors.events_unscored_summary"
# Called with `project_id=, lead_ids=` when leads are erased (GDPR): copies of them elsewhere go too.
LEADPULSE_LEAD_ERASERS = ["automations.services.lead_deliveries_erase", "companies.services.lead_memberships_erase"]
LEADPULSE_LEAD_ERASERS += ["predictions.services.lead_outcomes_erase"]
