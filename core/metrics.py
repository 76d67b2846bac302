"""Prometheus metrics: the one module instrumented code calls, and what `GET /metrics` answers.

Counters and histograms are recorded where things happen, by one-line calls to the
functions below; figures about the database and Redis (backlog, queue depth, dead
letters) are read when Prometheus scrapes, so they are true whichever process asks.

With `PROMETHEUS_MULTIPROC_DIR` set (the Procfile topology: uvicorn workers, Celery's
prefork children, beat), every process writes its figures to files in that directory
and a scrape adds up the files of the host; without it (embedded `make run`, the test
process) one in-process registry holds them. Files of processes that are gone are folded
into one archive per type when a process starts (`multiprocess_compact`), so counters
never go back and the directory does not grow with every restart. See docs/deploy.md.
"""

import fcntl
import glob
import hmac
import ipaddress
import logging
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
# Files are named after host and pid: processes of another container sharing the directory
# are never taken for dead ones of this host.
HOST = socket.gethostname().replace("_", "-") or "host"
if MULTIPROC_DIR:
    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: f"{HOST}-{os.getpid()}")

disable_created_metrics()  # `_created` series are not kept in multiprocess mode either: the same output both ways

# In-process figures (no multiprocess directory); in multiprocess mode the files hold them.
REGISTRY = CollectorRegistry(auto_describe=True)

# Seconds: ingest→scored spans a fast worker (tens of ms) to a backlog after an outage.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
TASK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

INGEST_REQUESTS = Counter(
    "leadpulse_ingest_requests",
    "Ingest HTTP requests by endpoint (URL pattern) and status code.",
    ["endpoint", "status"],
    registry=REGISTRY,
)
INGEST_EVENTS = Counter(
    "leadpulse_ingest_events",
    "Events sent to ingest, by outcome: accepted (stored), duplicate (stored before), rejected (invalid).",
    ["outcome"],
    registry=REGISTRY,
)
SCORED_LATENCY = Histogram(
    "leadpulse_ingest_to_scored_seconds",
    "Seconds from an event's receipt to the commit of the fold that scored it.",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
TASK_DURATION = Histogram(
    "leadpulse_task_duration_seconds",
    "Celery task run time by task name and outcome (success, retry, failure); scoring is scoring.leads_score_task.",
    ["task", "outcome"],
    buckets=TASK_BUCKETS,
    registry=REGISTRY,
)
SCORING_BATCH_LEADS = Histogram(
    "leadpulse_scoring_batch_leads",
    "Leads taken per scoring batch (its count: batches run). Many batches of one lead under steady traffic mean"
    " the drain's linger (LEADPULSE_SCORE_LINGER_SECONDS) is too short for the event rate.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
    registry=REGISTRY,
)
SCORING_REQUESTS_SHARED = Counter(
    "leadpulse_scoring_requests_shared",
    "Leads whose scoring request rode on another thread's round trip to Redis (core.pipeline.CoalescedRequests):"
    " under load, most of a web process's requests.",
    registry=REGISTRY,
)
GROUPED_ITEMS = Counter(
    "leadpulse_grouped_items",
    "Items that ran in a shared round of a group commit (core.groups.GroupCommit), by group: the ingest"
    " admissions and single-event inserts of a web process's concurrent requests. Lone items are not counted.",
    ["group"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "leadpulse_webhook_deliveries",
    "Webhook delivery attempts by outcome: succeeded, retrying (will be tried again), failed (dead-lettered).",
    ["outcome"],
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "leadpulse_dead_lettered",
    "Jobs moved to the dead-letter queue (FailedJob) by kind.",
    ["kind"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "leadpulse_rate_limited",
    "Requests refused with 429 by rate-limit scope.",
    ["scope"],
    registry=REGISTRY,
)

DEAD_LETTER_KINDS = ("webhook.delivery",)  # always reported, 0 included
# Known label values start at 0, so a dashboard has a series before the first occurrence.
for _outcome in ("accepted", "duplicate", "rejected"):
    INGEST_EVENTS.labels(outcome=_outcome)
for _outcome in ("succeeded", "retrying", "failed"):
    WEBHOOK_DELIVERIES.labels(outcome=_outcome)
for _kind in DEAD_LETTER_KINDS:
    DEAD_LETTERED.labels(kind=_kind)
for _scope in ("ingest-ip", "ingest-key", "api", "login-ip", "login-account", "register-ip"):
    RATE_LIMITED.labels(scope=_scope)

# --- Recording: one-line calls from the code that does the work ------------------------------


def ingest_request(*, endpoint: str, status: int) -> None:
    INGEST_REQUESTS.labels(endpoint=endpoint, status=str(status)).inc()


def ingest_events(*, accepted: int = 0, duplicate: int = 0, rejected: int = 0) -> None:
    for outcome, count in (("accepted", accepted), ("duplicate", duplicate), ("rejected", rejected)):
        if count:
            INGEST_EVENTS.labels(outcome=outcome).inc(count)


def events_scored_on_commit(*, waited: Iterable[float]) -> None:
    """Once the fold that marked events processed commits, observe their ingest→scored latencies (seconds)."""

    def observe() -> None:
        for seconds in waited:
            SCORED_LATENCY.observe(max(seconds, 0.0))

    # robust: a failed observation must never fail the scoring that already committed
    transaction.on_commit(observe, robust=True)


def scoring_batch(*, leads: int) -> None:
    SCORING_BATCH_LEADS.observe(leads)


def scoring_requests_shared(*, leads: int) -> None:
    SCORING_REQUESTS_SHARED.inc(leads)


def group_round(*, group: str, items: int) -> None:
    GROUPED_ITEMS.labels(group=group).inc(items)


def task_finished(*, task: str, outcome: str, seconds: float) -> None:
    TASK_DURATION.labels(task=task, outcome=outcome).observe(seconds)


def webhook_delivery(*, outcome: str) -> None:
    WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()


def dead_lettered(*, kind: str) -> None:
    DEAD_LETTERED.labels(kind=kind).inc()


def rate_limited(*, scope: str) -> None:
    RATE_LIMITED.labels(scope=scope).inc()


# --- Figures read at scrape time ------------------------------------------------------------


class ScrapeTimeCollector:
    """Backlog, oldest unscored event, queue depth and dead letters, read when Prometheus asks.

    Each is one cheap query: the unscored ones use the partial index `event_pending_idx`
    (rows with `processed_at IS NULL` only), so they cost the backlog, not the events table.
    A source that is down is reported by `leadpulse_scrape_source_up` instead of failing the scrape.
    """

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "leadpulse_scrape_source_up", "Whether a source answered this scrape.", labels=["source"]
        )
        try:
            yield from self._database()
            up.add_metric(["database"], 1)
        except Exception:
            logger.warning("metrics: database figures unavailable", exc_info=True)
            up.add_metric(["database"], 0)
        if settings.REDIS_URL:
            try:
                yield self._queue_depth()
                up.add_metric(["redis"], 1)
            except Exception:
                logger.warning("metrics: queue depth unavailable", exc_info=True)
                up.add_metric(["redis"], 0)
        yield up

    def _database(self) -> list[Metric]:
        from django.db.models import Count
        from django.utils import timezone

        from core.models import FailedJob

        with transaction.atomic():
            if connection.vendor == "postgresql":
                # a scrape must never queue up behind a slow database
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL statement_timeout = 2000")
            # {"n": count, "oldest": received_at}: the app that owns events answers (LEADPULSE_BACKLOG)
            unscored = import_string(settings.LEADPULSE_BACKLOG)()
            dead_rows = list(
                FailedJob.objects.filter(replayed_at__isnull=True)
                .values_list("kind")
                .annotate(n=Count("id"))
                .order_by("kind")
            )
        backlog = GaugeMetricFamily("leadpulse_unscored_events", "Stored events not scored yet.")
        backlog.add_metric([], unscored["n"])
        age = GaugeMetricFamily(
            "leadpulse_oldest_unscored_event_age_seconds", "Age of the oldest stored event not scored yet (0: none)."
        )
        oldest = unscored["oldest"]
        age.add_metric([], max((timezone.now() - oldest).total_seconds(), 0.0) if oldest else 0.0)
        dead = GaugeMetricFamily(
            "leadpulse_dead_letters", "Dead-lettered jobs not replayed yet, by kind.", labels=["kind"]
        )
        for kind, count in {**dict.fromkeys(DEAD_LETTER_KINDS, 0), **dict(dead_rows)}.items():
            dead.add_metric([kind], count)
        return [backlog, age, dead]

    def _queue_depth(self) -> Metric:
        import redis

        depth = GaugeMetricFamily("leadpulse_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"])
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
        try:
            for queue in QUEUES:
                depth.add_metric([queue], client.llen(queue))
        finally:
            client.close()
        return depth


QUEUES = ("celery",)  # every task goes to Celery's default queue


class _InProcess:
    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


@contextmanager
def _directory_lock(*, exclusive: bool) -> Iterator[None]:
    with open(os.path.join(MULTIPROC_DIR, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class _HostFiles(MultiProcessCollector):
    """The multiprocess files of this host, read under the lock compaction takes."""

    def __init__(self) -> None:
        super().__init__(None, path=MULTIPROC_DIR)

    def collect(self) -> Iterable[Metric]:
        with _directory_lock(exclusive=False):
            return list(self.merge(glob.glob(os.path.join(MULTIPROC_DIR, "*.db")), accumulate=True))


def exposition() -> bytes:
    """The metrics of this host in Prometheus text format."""
    registry = CollectorRegistry()
    registry.register(_HostFiles() if MULTIPROC_DIR else _InProcess())
    registry.register(ScrapeTimeCollector())
    return generate_latest(registry)


# --- Multiprocess directory upkeep ----------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_files(paths: Sequence[str]) -> list[str]:
    """Files written by processes of this host that no longer run."""
    dead = []
    for path in paths:
        owner = os.path.basename(path)[: -len(".db")].rsplit("_", 1)[-1]
        host, _, pid = owner.rpartition("-")
        if host == HOST and pid.isdecimal() and not _pid_alive(int(pid)):
            dead.append(path)
    return dead


def multiprocess_compact() -> None:
    """Fold the counter and histogram files of this host's dead processes into one archive per type.

    Called when a process starts. Their totals stay (a counter never goes back, which
    Prometheus would read as a reset); their files go, so restarts do not pile files up.
    Gauges are never stored in files here (they are read at scrape time), so a dead
    process's gauge files, if any, are simply removed.
    """
    if not MULTIPROC_DIR:
        return
    os.makedirs(MULTIPROC_DIR, exist_ok=True)
    with _directory_lock(exclusive=True):
        paths = glob.glob(os.path.join(MULTIPROC_DIR, "*.db"))
        dead = _dead_files(paths)
        for kind in ("counter", "histogram"):
            files = [p for p in dead if os.path.basename(p).startswith(f"{kind}_")]
            if not files:
                continue
            archive = os.path.join(MULTIPROC_DIR, f"{kind}_{HOST}-archive.db")
            merged = MultiProcessCollector.merge([*files, *([archive] if archive in paths else [])], accumulate=False)
            _write_archive(archive, merged)
            for path in files:
                os.remove(path)
        for path in dead:
            if os.path.basename(path).startswith("gauge_"):
                os.remove(path)


def _write_archive(archive: str, merged: Iterable[Metric]) -> None:
    partial = f"{archive}.partial"  # not *.db: a scrape never reads it half-written
    if os.path.exists(partial):
        os.remove(partial)
    out = MmapedDict(partial)
    try:
        for metric in merged:
            for sample in metric.samples:
                labels = dict(sample.labels)
                key = mmap_key(metric.name, sample.name, list(labels), list(labels.values()), metric.documentation)
                out.write_value(key, sample.value, 0.0)
    finally:
        out.close()
    os.replace(partial, archive)


# --- GET /metrics ---------------------------------------------------------------------------


@cache
def _allowed_networks(allow: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in allow if cidr.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(f"LEADPULSE_METRICS_ALLOW: {exc}") from exc


def scrape_allowed(request: HttpRequest) -> bool:
    """A bearer token equal to LEADPULSE_METRICS_TOKEN, or a peer address in LEADPULSE_METRICS_ALLOW.

    The peer is the TCP peer (REMOTE_ADDR), never a forwarded header; loopback is not trusted
    by itself, since behind a proxy on the same host every client comes from loopback.
    """
    token = settings.LEADPULSE_METRICS_TOKEN
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode()):
        return True
    networks = _allowed_networks(tuple(settings.LEADPULSE_METRICS_ALLOW))
    if not networks:
        return False
    try:
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped:
        peer = peer.ipv4_mapped
    return any(peer in network for network in networks)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """`GET /metrics`: Prometheus text format; 404 to anyone neither holding the token nor allowed."""
    if request.method not in ("GET", "HEAD") or not scrape_allowed(request):
        raise Http404
    # 0.0.4: the text format every Prometheus version reads (our names need none of 1.0.0's escaping)
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
