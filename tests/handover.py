"""What scoring hands the other apps after commit, read back per consumer task."""

from core.contracts import LEAD_CHANGES_FANOUT_TASK


def sent_to(name: str, sent: list[tuple[str, dict]]) -> list[dict]:
    """The kwargs of the messages for task `name` among `(task name, kwargs)` sent, fan-out parts included
    (a batch's changes travel as one `LEAD_CHANGES_FANOUT_TASK` holding every consumer's part)."""
    found = []
    for task, kwargs in sent:
        if task == name:
            found.append(kwargs)
        elif task == LEAD_CHANGES_FANOUT_TASK:
            found += [part for part_name, part in kwargs["parts"] if part_name == name]
    return found
