"""Developer machine and `make run`: debug on, embedded defaults."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
LEADPULSE_WEBHOOK_ALLOW_PRIVATE = env.bool("LEADPULSE_WEBHOOK_ALLOW_PRIVATE", default=True)
