"""Settings of the benchmark's children only: the development settings plus the bare view's URLconf.

`bench/ingest.py` selects this module (DJANGO_SETTINGS_MODULE=bench.settings) for the processes it
starts; no deployment does, so `/bench/bare` exists only there.
"""

from leadpulse.settings.local import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
