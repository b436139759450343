"""The server's life cycle as the use cases see it: a flag set when the server begins to
stop, which long work in helper threads (a JAR's entries, ...) polls so that shutdown ends
it within moments instead of waiting for it (a thread cannot be cancelled from outside)."""

from __future__ import annotations

import threading


class Stopping:
    """Set once, when the server is told to stop (the context's ``stopping``)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

