#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    # Production unless told otherwise: development is `make run` or DJANGO_SETTINGS_MODULE=leadpulse.settings.local.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadpulse.settings.production")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        if settings.configured:
            raise  # the settings loaded: a command's own error keeps its traceback
        # The settings refused to load (no secret key, no database…): their reason is one line.
        sys.exit(f"LeadPulse cannot start ({os.environ['DJANGO_SETTINGS_MODULE']}): {error}")


if __name__ == "__main__":
    main()
