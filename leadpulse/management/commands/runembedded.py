"""Run web, worker and beat in one process: the embedded mode of `make run`.

Same code paths as production; only the transports differ: SQLite (WAL), an
in-memory Celery broker and channel layer, and a local-memory cache. The worker
and beat run as threads beside the ASGI server.
"""

import asyncio

import uvicorn
from celery.beat import EmbeddedService
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.realtime import broadcast_loop_use
from leadpulse.celery import app as celery_app


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and celery-beat in one process (embedded mode)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, host: str, port: int, **options):
        if not settings.EMBEDDED:
            raise CommandError("REDIS_URL is set: run the Procfile topology (honcho start) instead.")
        with start_worker(
            celery_app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="INFO", shutdown_timeout=30
        ):
            # Service() ignores beat_scheduler from the config: name the database scheduler.
            beat = EmbeddedService(celery_app, thread=True, scheduler_cls=settings.CELERY_BEAT_SCHEDULER)
            beat.start()
            self.stdout.write(self.style.SUCCESS(f"LeadPulse is running at http://{host}:{port}/  (Ctrl-C stops it)"))
            server = uvicorn.Server(
                uvicorn.Config("leadpulse.asgi:application", host=host, port=port, lifespan="off", log_level="info")
            )
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            # live updates from the worker thread go through the server's loop (in-memory channel layer)
            broadcast_loop_use(loop)
            try:
                loop.run_until_complete(server.serve())
            except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled
                self.stdout.write("Stopping the worker and beat…")
            finally:
                beat.stop()
                loop.close()
