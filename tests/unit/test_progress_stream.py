"""api/progress.py: the lines a long operation streams (progress, heartbeats, the result
or the error that ended it), read from the generator the response sends."""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

from signgate import errors
from signgate.api import progress
from signgate.api.progress import _Done, _lines


def _read(first: Any, events: queue.Queue[Any]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines(first, events)]


def test_the_newest_progress_then_the_result() -> None:
    events: queue.Queue[Any] = queue.Queue()
    for at in [(5, 10), (9, 10), (10, 10)]:
        events.put(at)
    events.put(_Done(result={"ok": True}))
    lines = _read((0, 10), events)
    # What is waiting when a line is due is folded into the newest progress, which is sent
    # before the result.
    assert lines == [{"progress": {"done": 10, "total": 10}}, {"result": {"ok": True}}]


def test_heartbeats_repeat_the_last_progress_while_nothing_happens() -> None:
    events: queue.Queue[Any] = queue.Queue()
    threading.Timer(progress.HEARTBEAT * 3.5, lambda: events.put(_Done(result=1))).start()
    lines = _read((3, 10), events)
    assert lines[-1] == {"result": 1}
    beats = lines[:-1]
    assert len(beats) >= 3
    assert all(b == {"progress": {"done": 3, "total": 10}} for b in beats)


def test_an_error_after_the_start_is_the_last_line_with_its_code() -> None:
    events: queue.Queue[Any] = queue.Queue()
    events.put(_Done(error=errors.Unavailable("the database went away")))
    lines = _read((0, 10), events)
    assert lines[-1] == {"error": {"code": "unavailable", "detail": "the database went away"}}


def test_an_unexpected_error_says_nothing_of_its_insides() -> None:
    events: queue.Queue[Any] = queue.Queue()
    events.put(_Done(error=RuntimeError("secret path /srv/x")))
    last = _read((0, 1), events)[-1]
    assert last["error"]["code"] == "internal_error"
    assert "secret" not in last["error"]["detail"]
