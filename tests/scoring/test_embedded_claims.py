"""Embedded mode's claims: SQLite has no SKIP LOCKED, so its IMMEDIATE transactions serialise batch scoring.

Each run uses a real SQLite file (WAL, embedded settings: leadpulse.settings.local) in processes
of its own (tests/scoring/embedded_scoring.py); the events come through `events_ingest` and are folded
in chunks of 7 per lead, so hot leads take several batches, late events refold, and two devices
identifying as a known person merge into it while batches run. Concurrent runs must leave
exactly what one thread scoring alone leaves, with no error (e.g. "database is locked")
reaching `leads_score`'s caller.

Each claim waits a moment for another thread to claim too: were claims not serialised, two
threads would be between a claim and its commit at once (`most_inside`), as the control run
with SQLite's default DEFERRED transactions shows.
"""

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.live import ROOT

pytestmark = pytest.mark.live


class Embedded:
    """One SQLite file, copied from a migrated one, and the scoring processes that share it."""

    def __init__(self, template: Path, path: Path, *, now: str, transaction_mode: str = "") -> None:
        shutil.copyfile(template, path)
        self.path = path
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        self.env |= {
            "DJANGO_SETTINGS_MODULE": "leadpulse.settings.local",
            "LEADPULSE_SQLITE_PATH": str(path),
            "LEADPULSE_SCORE_CHUNK_EVENTS": "7",
            "EMBEDDED_SCORING_NOW": now,
        }
        if transaction_mode:
            self.env["EMBEDDED_SCORING_TRANSACTION_MODE"] = transaction_mode

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.scoring.embedded_scoring", *args],
            env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    @staticmethod
    def result(process: subprocess.Popen) -> dict:
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err[-3000:]
        return json.loads(out)

    def run(self, *args: str) -> dict:
        return self.result(self.start(*args))

    def threads(self, count: int) -> tuple[list[dict], dict]:
        """Both phases, each scored by `count` threads of one process: the scoring runs' outcomes and the report."""
        out = self.run("scenario", "--threads", str(count))
        return out["runs"], out["report"]

    def processes(self, count: int, *, threads: int) -> tuple[list[dict], dict]:
        """Both phases, each scored by `count` processes of `threads` threads at once."""
        runs = []
        for phase in ("1", "2"):
            self.run("ingest", "--phase", phase)
            meeting = self.path.parent / f"meet-{phase}"
            meeting.mkdir()
            started = [
                self.start("score", "--threads", str(threads), "--meet", str(meeting), "--parties", str(count))
                for _ in range(count)
            ]
            runs += [self.result(process) for process in started]
        return runs, self.run("report")


@pytest.fixture(scope="module")
def migrated(migrated_sqlite) -> Path:
    return migrated_sqlite


@pytest.fixture(scope="module")
def now() -> str:
    """Every run's clock: the same instant, so that runs compare row for row."""
    return datetime.now(UTC).replace(second=0, microsecond=0).isoformat()


@pytest.fixture(scope="module")
def single(migrated, now, tmp_path_factory) -> dict:
    """What one thread scoring alone leaves: the reference for every concurrent run."""
    runs, report = Embedded(migrated, tmp_path_factory.mktemp("single") / "db.sqlite3", now=now).threads(1)
    assert_no_errors(runs)
    return report


def assert_no_errors(runs: list[dict]) -> None:
    errors = [error.strip().splitlines()[-1] for run in runs for error in run["errors"]]
    assert not errors, f"{len(errors)} calls of leads_score failed, e.g. {errors[0]}"


def assert_same_as_alone(report: dict, single: dict) -> None:
    assert report["unprocessed"] == 0
    assert report["leads"] == single["leads"]
    assert report["history"] == single["history"]
    assert report["merges"] == single["merges"]


def test_one_thread_alone_leaves_the_pure_fold_of_every_lead(single):
    assert single["unprocessed"] == 0
    assert single["ruleRows"] == single["events"] == 240 + 10 + 240 + 2
    assert single["merges"]["crm"] == ["v3", "v7"]
    assert {name for name, lead in single["leads"].items() if lead["mergedInto"]} == {"v3", "v7"}
    for name, expected in single["pure"].items():
        lead = single["leads"][name]
        assert (lead["score"], lead["stage"], lead["state"]) == (expected["score"], expected["stage"],
                                                                 expected["state"]), name  # fmt: skip
        assert single["history"][name] == expected["history"], name


def test_threads_claiming_overlapping_leads_at_once_are_serialised_and_leave_what_one_thread_leaves(
    migrated, now, tmp_path, single
):
    # when 4 threads of one process (embedded mode's web and worker threads) score overlapping leads at once
    runs, report = Embedded(migrated, tmp_path / "db.sqlite3", now=now).threads(4)

    # then no call failed, no two claims were ever open at once, and the result is the single run's
    assert_no_errors(runs)
    assert [run["most_inside"] for run in runs] == [1, 1]
    assert_same_as_alone(report, single)


def test_processes_scoring_one_sqlite_file_at_once_leave_what_one_thread_leaves(migrated, now, tmp_path, single):
    # when 2 processes of 2 threads each score overlapping leads of one SQLite file at once
    runs, report = Embedded(migrated, tmp_path / "db.sqlite3", now=now).processes(2, threads=2)

    # then no call failed (a claim waits for the other process's transaction), the processes
    # really scored at the same time (they start together), and the result is the single run's
    assert_no_errors(runs)
    assert len(runs) == 4
    for first, second in (runs[0:2], runs[2:4]):
        assert first["began"] < second["ended"] and second["began"] < first["ended"]
    assert_same_as_alone(report, single)


def test_control_without_immediate_transactions_claims_overlap_and_the_run_fails(migrated, now, tmp_path, single):
    """The harness sees unserialised claims: SQLite's default DEFERRED transactions let two threads claim at once."""
    runs, report = Embedded(migrated, tmp_path / "db.sqlite3", now=now, transaction_mode="DEFERRED").threads(4)

    assert max(run["most_inside"] for run in runs) > 1
    errors = [error for run in runs for error in run["errors"]]
    assert errors or report["leads"] != single["leads"] or report["history"] != single["history"]


def test_a_rescore_job_of_two_slices_run_by_two_threads_leaves_what_one_slice_leaves(migrated, tmp_path):
    path = tmp_path / "db.sqlite3"
    shutil.copyfile(migrated, path)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"DJANGO_SETTINGS_MODULE": "leadpulse.settings.local", "LEADPULSE_SQLITE_PATH": str(path)}
    done = subprocess.run([sys.executable, "-m", "tests.scoring.embedded_rescore"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=240, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)

    assert not out["errors"], out["errors"][0]
    assert out["alone"]["job"] == out["sliced"]["job"] == ["succeeded", 41, 41, 41]
    assert sorted(done for _, done in out["sliced"]["slices"]) == [20, 21]  # ids 42..82: 20 odd, 21 even
    assert out["sliced"]["leads"] == out["alone"]["leads"]
    assert out["sliced"]["history"] == out["alone"]["history"]
