"""Start-up of every process: production settings unless told otherwise, checked before anything runs."""

import os
import sys

DEFAULT_SETTINGS_MODULE = "leadpulse.settings.production"
# uvicorn's status for "failed before serving": its supervisor stops instead of respawning workers forever.
STARTUP_FAILURE = 3


def settings_module_default() -> None:
    """Name the production settings unless DJANGO_SETTINGS_MODULE names others."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS_MODULE)


def settings_load() -> None:
    """Import the settings now; if they refuse to load, exit with their one-line reason.

    Settings raise ImproperlyConfigured for a missing secret key or database; left to the
    first code that touches them, that surfaces as a traceback deep inside Celery or uvicorn.
    """
    settings_module_default()
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.SECRET_KEY  # noqa: B018 (imports the settings module)
    except ImproperlyConfigured as error:
        print(f"LeadPulse cannot start ({os.environ['DJANGO_SETTINGS_MODULE']}): {error}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
