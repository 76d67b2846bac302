"""Developer machine and `make run`: debug on, embedded defaults."""

from .base import *  # noqa: F403
from .base import INSECURE_DEVELOPMENT_SECRET_KEY, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env("DJANGO_SECRET_KEY", default=INSECURE_DEVELOPMENT_SECRET_KEY)
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
LEADPULSE_WEBHOOK_ALLOW_PRIVATE = env.bool("LEADPULSE_WEBHOOK_ALLOW_PRIVATE", default=True)
