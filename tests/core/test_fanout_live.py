"""A batch's lead-changes fan-out whose worker is SIGKILLed mid-way: redelivered, every consumer's effect once.

Real worker processes (prefork), PostgreSQL and Redis, a real HTTP receiver. The test holds, in a transaction
of its own, a lock that one part of the fan-out must take, so the task is caught inside that part (not by
luck); the pool child running it is SIGKILLed while it waits. Its parent reports the child lost and gives the
message back to the broker (`acks_late`, `reject_on_worker_lost`); the redelivered fan-out runs every part
again: predictions', companies' and automations' idempotency per change is what keeps the effects single.
"""

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from accounts.models import Project
from automations.models import AutomationExecution, WebhookDelivery, WebhookSubscription
from automations.services import outbox_sweep
from companies.models import Company, CompanyMembership, CompanyScore, CompanyScoreHistory
from companies.rollup import Member, company_rollup
from companies.selectors import rollup_configs
from companies.services import ROLLUP
from core.contracts import LEAD_CHANGES_FANOUT_TASK
from ingest.models import Event, Lead
from leadpulse.celery import app
from predictions.models import Outcome
from scoring.models import ScoreHistory
from scoring.selectors import leads_results
from tests.accounts.factories import project_with_owner
from tests.automations.test_webhooks_live import subscribe
from tests.conftest import client_for
from tests.live import wait_until

pytestmark = pytest.mark.live

YEAR = 365 * 86400  # the longest cooldown: the rules' window does not turn during the test


def batch(key, messages):
    try:
        response = Client().post(
            "/v1/batch", json.dumps({"writeKey": key, "batch": messages}), content_type="text/plain"
        )
        assert response.status_code == 200, response.content
    finally:
        connection.close()


def scored(project) -> bool:
    return not Event.objects.filter(project=project, processed_at__isnull=True).exists()


class Held:
    """A transaction of the test's own (its own thread, so its own connection) that runs `hold` and keeps its
    locks until `release()`, then rolls back."""

    def __init__(self, hold: Callable[[], object]):
        self.pid = 0
        self._hold = hold
        self._held = threading.Event()
        self._release = threading.Event()
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._held.wait(30), "the lock was not taken"
        assert not self._errors, self._errors

    def _run(self) -> None:
        try:
            with transaction.atomic():
                self._hold()
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    self.pid = cursor.fetchone()[0]
                self._held.set()
                self._release.wait(180)
                transaction.set_rollback(True)
        except BaseException as error:  # re-raised in the test's thread (release)
            self._errors.append(error)
        finally:
            self._held.set()
            connection.close()

    def waiting(self) -> set[int]:
        """The database backends that wait for a lock of this transaction, directly or behind another waiter (a
        row's second waiter queues for the tuple lock its first one holds)."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            blocking = dict(cursor.fetchall())
        found: set[int] = set()
        while True:
            more = {pid for pid, by in blocking.items() if pid not in found and ({self.pid} | found) & set(by)}
            if not more:
                return found
            found |= more

    def release(self) -> None:
        self._release.set()
        self._thread.join(30)
        assert not self._errors, self._errors


def fanouts_running(workers) -> list[tuple[str, int]]:
    """The fan-out tasks the workers' pool children run now: (task id, the child's pid)."""
    replies = app.control.inspect(timeout=2, limit=workers.count).active() or {}
    return [
        (task["id"], task["worker_pid"])
        for tasks in replies.values()
        for task in tasks
        if task["name"] == LEAD_CHANGES_FANOUT_TASK
    ]


def company_from_scratch(company: Company) -> dict[int, tuple[int, str]]:
    """Every model's (score, stage) of the company, rolled up afresh from its members' current results."""
    members = list(CompanyMembership.objects.filter(company=company).values_list("lead_id", flat=True))
    results = leads_results(project_id=company.project_id, lead_ids=members)
    configs = rollup_configs(project_ids=[company.project_id])
    now = timezone.now()
    expected = {}
    for model_id, policy in results.policies.items():
        found = [
            Member(lead_id, results.scores.get((lead_id, model_id), 0), results.active_at[lead_id])
            for lead_id in members
            if lead_id in results.active_at
        ]
        result = company_rollup(found, traits=company.traits, policy=policy, now=now,
                                config=configs.get(model_id, ROLLUP))  # fmt: skip
        expected[model_id] = (result.score, result.stage)
    return expected


@dataclass(frozen=True)
class World:
    """Ann of acme.com, cold (one page view), her company below 60; listeners from then on."""

    project: Project
    key: str
    ann: Lead
    company: Company
    before: CompanyScore  # the company's score before the batch
    rules: dict[str, int]  # "lead" (ann crosses 31), "company" (acme crosses 60) -> rule id
    fired: int  # the subscription to `automation.fired` (the lead one hears of ann's changes)


def world_with_listeners(workers, receiver) -> World:
    project, owner, key = project_with_owner(name="Fan-out killed")
    api = client_for(owner)
    batch(key, [
        {"type": "identify", "anonymousId": "ann", "traits": {"email": "ann@acme.com"}, "messageId": "ann-id"},
        {"type": "track", "event": "page_view", "anonymousId": "ann", "messageId": "ann-view"},
    ])  # fmt: skip
    wait_until(lambda: scored(project) and CompanyScore.objects.filter(company__project=project).exists(),
               timeout=60, message="ann scored and her company rolled up")  # fmt: skip
    workers.wait_idle()
    company = Company.objects.get(project=project)
    ann = Lead.objects.get(project=project, anonymous_id="ann")
    before = CompanyScore.objects.get(company=company)
    assert (ann.current_score, ann.lead_stage) == (5, "cold") and before.score < 60
    # listeners only now: subscriptions to ann's changes and to rules firing, a rule on ann crossing 31, one on acme
    # crossing 60
    subscribe(api, receiver, events=("lead.updated", "lead.stage_changed"))
    fired = subscribe(api, receiver, events=("automation.fired",))["id"]
    rules = {}
    for name, trigger, threshold in (("lead", "score_crossed_up", 31), ("company", "company.score_crossed_up", 60)):
        created = api.post("/api/automations", {
            "name": name, "trigger": trigger, "triggerConfig": {"threshold": threshold}, "cooldownSeconds": YEAR,
            "action": "webhook", "actionConfig": {"url": f"{receiver.url}/{name}"},
        }, format="json")  # fmt: skip
        assert created.status_code == 201, created.content
        rules[name] = created.json()["id"]
    return World(project=project, key=key, ann=ann, company=company, before=before, rules=rules, fired=fired)


def fanout_caught(world: World, receiver, workers, *, caught_in: str) -> tuple[Held, str, int]:
    """Send the batch that takes ann to qualified (demo request, contract signed: won) and acme past 60, its fan-out
    caught waiting for a lock of the test's in its part `caught_in`; the lock, the task's id and its child's pid.

    Companies lock the company row to recompute it; automations claim the lead rule's execution (a unique row:
    the insert waits for the test's uncommitted one) and, once claimed, commit its `automation.fired` delivery
    ("firing": the delivery's deferred foreign key share-locks its subscription's row at COMMIT, so the task is
    caught with its COMMIT sent; the company rule's firing, in a task of its own, waits there too)."""

    def hold() -> None:
        if caught_in == "companies":
            Company.objects.select_for_update().get(id=world.company.id)
        elif caught_in == "automations":
            AutomationExecution.objects.create(project=world.project, rule_id=world.rules["lead"], lead=world.ann,
                                               window=int(timezone.now().timestamp()) // YEAR, trigger={})  # fmt: skip
        else:
            WebhookSubscription.objects.select_for_update().get(id=world.fired)

    held = Held(hold)
    batch(world.key, [
        {"type": "track", "event": "demo_request", "anonymousId": "ann", "messageId": "ann-demo"},
        {"type": "track", "event": "contract_signed", "anonymousId": "ann", "messageId": "ann-signed"},
    ])  # fmt: skip
    waiters = 2 if caught_in == "firing" else 1
    wait_until(lambda: len(held.waiting()) == waiters and fanouts_running(workers), timeout=60,
               message=f"the fan-out to wait in its {caught_in} part")  # fmt: skip
    running = fanouts_running(workers)
    assert len(running) == 1, running
    # the parts before it committed (predictions: ann won; companies: acme moved) and their effects went out
    assert Outcome.objects.filter(lead=world.ann).exists()
    if caught_in != "companies":
        assert CompanyScore.objects.get(company=world.company).score >= 60
        wait_until(lambda: {"lead.updated", "lead.stage_changed"} <= {r.headers["leadpulse-event"] for r in
                                                                     receiver.requests},
                   timeout=30, message="ann's lead deliveries")  # fmt: skip
    else:
        assert CompanyScore.objects.get(company=world.company).score == world.before.score
    if caught_in == "automations":
        # the company rule fired in a task of its own, not held: its POSTs are over before the kill, so none is caught
        # between its POST and its recording (a POST no process can make atomic with a commit: sent again then)
        wait_until(lambda: AutomationExecution.objects.filter(rule_id=world.rules["company"], status="succeeded")
                   .exists() and not WebhookDelivery.objects.filter(project=world.project, status="pending").exists(),
                   timeout=30, message="the company rule's firing to settle")  # fmt: skip
    return held, *running[0]


def finished(workers, task_id: str) -> int:
    """How many times the workers' logs say the task succeeded."""
    return sum(workers.succeeded(index, task=f"[{task_id}]") for index in range(workers.count))


def settled(world: World, workers, task_id: str) -> None:
    wait_until(lambda: not fanouts_running(workers), timeout=60, message="the redelivered fan-out to finish")
    workers.wait_idle()
    # every delivery was answered 200 at once: none waits for a retry
    # what a killed task committed but never sent (an execution's delivery, say) is sent by the outbox sweep, as beat's
    outbox_sweep()
    wait_until(lambda: not WebhookDelivery.objects.filter(project=world.project, status="pending").exists(),
               timeout=20, message="every delivery to settle")  # fmt: skip
    workers.wait_idle()
    # the fan-out finished once, in the child or worker that got it back
    assert finished(workers, task_id) == 1


def assert_each_effect_once(world: World, receiver) -> None:
    # every webhook of the batch's crossings reached the receiver once
    sent = Counter((request.path, request.headers["leadpulse-event"]) for request in receiver.requests)
    assert sent == {
        ("/hook", "lead.updated"): 1,
        ("/hook", "lead.stage_changed"): 1,
        ("/hook", "automation.fired"): 2,  # the subscription to firings hears of both rules
        ("/hook/lead", "automation.fired"): 1,  # each rule's own action
        ("/hook/company", "automation.fired"): 1,
    }, sent
    deliveries = WebhookDelivery.objects.filter(project=world.project)
    assert set(deliveries.values_list("status", flat=True)) == {"succeeded"}
    assert deliveries.count() == len(receiver.requests)
    assert len({request.headers["leadpulse-delivery"] for request in receiver.requests}) == len(receiver.requests)
    for name, rule_id in world.rules.items():
        [execution] = AutomationExecution.objects.filter(rule_id=rule_id)
        assert execution.status == "succeeded", name
    # ann is won once, from her contract
    [outcome] = Outcome.objects.filter(project=world.project)
    signed = Event.objects.get(project=world.project, event_id="ann-signed")
    assert (outcome.lead_id, outcome.outcome, outcome.source_event_id) == (world.ann.id, "won", signed.id)
    # the company's score is what a roll-up from scratch gives, reached by one move (no history row twice)
    ann = Lead.objects.get(id=world.ann.id)
    assert (ann.current_score, ann.lead_stage) == (155, "qualified")
    stored = {row.model_id: (row.score, row.stage) for row in CompanyScore.objects.filter(company=world.company)}
    assert stored == company_from_scratch(world.company)
    history = list(CompanyScoreHistory.objects.filter(company=world.company).order_by("id"))
    before = world.before
    assert [(row.old_score, row.new_score) for row in history] == [
        (0, before.score),
        (before.score, stored[before.model_id][0]),
    ]
    # and the scoring batch itself was not repeated
    rows = ScoreHistory.objects.filter(lead=ann, reason="rule")
    assert sorted(rows.values_list("event__event_id", flat=True)) == ["ann-demo", "ann-id", "ann-signed", "ann-view"]


@pytest.mark.parametrize("caught_in", ["companies", "automations", "firing"])
def test_a_fanout_whose_pool_child_is_killed_is_redelivered_and_has_each_effect_once(live_pipeline, receiver,
                                                                                     caught_in):  # fmt: skip
    workers = live_pipeline
    world = world_with_listeners(workers, receiver)
    # given the batch's fan-out caught waiting for the test's lock in its part `caught_in`
    held, task_id, child = fanout_caught(world, receiver, workers, caught_in=caught_in)
    try:
        caught = held.waiting()
        # when the pool child that runs it is SIGKILLed (its parent lives, and reports it lost)
        os.kill(child, signal.SIGKILL)
        # then the message comes back and another child runs the same fan-out, which waits at the same place
        wait_until(lambda: any(t == task_id and pid != child for t, pid in fanouts_running(workers))
                   or finished(workers, task_id), timeout=60, message="the fan-out to be redelivered")  # fmt: skip
        wait_until(lambda: held.waiting() - caught or finished(workers, task_id), timeout=60,
                   message="the redelivered fan-out to wait")  # fmt: skip
    finally:
        held.release()
    if caught_in == "firing":
        # the killed child's firing committed (the execution, its automation.fired delivery) but its sends were lost,
        # and the redelivered fan-out found the rule fired: the outbox sweep (beat's, every 30 s) sends them
        wait_until(lambda: not fanouts_running(workers), timeout=60, message="the redelivered fan-out to finish")
        workers.wait_idle()
        lost = AutomationExecution.objects.get(rule_id=world.rules["lead"])
        assert (lost.status, lost.attempts) == ("pending", 0)
        assert outbox_sweep() >= 2  # its execution and its automation.fired delivery, at least
    settled(world, workers, task_id)
    # and each of its effects happened once
    assert_each_effect_once(world, receiver)


VISIBILITY_TIMEOUT = 2  # seconds: the broker hands a dead worker's unacked message to the next one after this


@pytest.fixture
def short_visibility(live_pipeline):
    """The session's worker processes, restarted with a short broker visibility timeout; restored afterwards."""
    workers = live_pipeline
    workers.stop()
    saved = os.environ.get("CELERY_BROKER_VISIBILITY_TIMEOUT")
    os.environ["CELERY_BROKER_VISIBILITY_TIMEOUT"] = str(VISIBILITY_TIMEOUT)
    try:
        workers.start()
        yield workers
    finally:
        if workers.processes:
            workers.wait_idle(timeout=120)
        workers.stop()
        if saved is None:
            os.environ.pop("CELERY_BROKER_VISIBILITY_TIMEOUT", None)
        else:
            os.environ["CELERY_BROKER_VISIBILITY_TIMEOUT"] = saved
        workers.start()


def test_a_fanout_whose_whole_worker_is_killed_is_redelivered_to_the_next_worker_and_has_each_effect_once(
    short_visibility, receiver
):
    workers = short_visibility
    world = world_with_listeners(workers, receiver)
    # given the batch's fan-out caught in its last part (automations), the parts before it committed
    held, task_id, _child = fanout_caught(world, receiver, workers, caught_in="automations")
    # when every worker process, parents and children, is SIGKILLed: no one is left to give the message back
    try:
        workers.kill()
    finally:
        held.release()
    # then, once the visibility timeout passed, the next worker to start finds it unacked and runs it again
    time.sleep(VISIBILITY_TIMEOUT + 1)
    workers.start()
    wait_until(lambda: AutomationExecution.objects.filter(rule_id=world.rules["lead"]).exists(), timeout=60,
               message="the fan-out to be redelivered")  # fmt: skip
    settled(world, workers, task_id)
    # and each of its effects happened once
    assert_each_effect_once(world, receiver)
