"""`core.pipeline.lead_changes_fanout`: a batch's parts run in turn; one that fails goes out as its own task."""

from celery import shared_task

from core import pipeline

ran: list[tuple[str, list]] = []


@shared_task(name="tests.fanout_part_ok")
def part_ok(*, changes: list) -> None:
    ran.append(("ok", changes))


@shared_task(name="tests.fanout_part_down")
def part_down(*, changes: list) -> None:
    ran.append(("down", changes))
    raise RuntimeError("the consumer's store is down")


def test_parts_run_in_order_and_a_failing_one_is_sent_as_its_own_task_while_the_rest_still_run(monkeypatch):
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr("core.pipeline.app.send_task", lambda name, kwargs=None, **_: sent.append((name, kwargs)))
    ran.clear()

    pipeline.lead_changes_fanout(parts=[
        ("tests.fanout_part_ok", {"changes": [1]}),
        ("tests.fanout_part_down", {"changes": [2]}),
        ("tests.fanout_part_ok", {"changes": [3]}),
    ])  # fmt: skip

    assert ran == [("ok", [1]), ("down", [2]), ("ok", [3])]
    assert sent == [("tests.fanout_part_down", {"changes": [2]})]  # its task retries it as that task does
