"""Turns: at most ``slots`` model runs at once, handed out in the order they were asked for.

onnxruntime runs one call on every core it has (its intra-op thread pool), so many calls at once
on one session oversubscribe the cores. One at a time leaves part of a core idle while the Python
around a run (phonemes, alignments, the hand-over) goes on; two at a time overlap that with the
other's run (docs/benchmarks.md, "Against piper's own HTTP server": 1.0 against 1.3 cores busy at
4 clients). Turns go first come, first served, and a request asks again for every sentence, so
concurrent requests take turns sentence by sentence: a new request's first sentence waits for at
most one sentence of each request ahead of it, never for a whole long text.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Iterator


class Turns:
    """A fair (FIFO) semaphore of ``slots`` turns, each held for one model run."""

    def __init__(self, slots: int = 1) -> None:
        self.slots = slots
        self._lock = threading.Lock()
        self._waiting: deque[threading.Event] = deque()
        self._running = 0
        self._coming = 0

    def coming(self) -> None:
        """Someone will ask for a turn soon (a run handed to another thread): counted in ``busy``
        from now until it asks with ``turn(coming=True)``, or says it will not with ``not_coming``."""
        with self._lock:
            self._coming += 1

    def not_coming(self) -> None:
        with self._lock:
            self._coming -= 1

    @contextlib.contextmanager
    def turn(self, coming: bool = False) -> Iterator[None]:
        """Wait for this caller's turn (behind everyone who asked before), hold it for the block.
        ``coming``: the caller said it would (``coming()``)."""
        with self._lock:
            if coming:
                self._coming -= 1
            mine = None
            if self._running < self.slots and not self._waiting:
                self._running += 1
            else:
                mine = threading.Event()
                self._waiting.append(mine)
        if mine is not None:
            mine.wait()  # the one before hands the turn straight over, so nobody can jump the queue
        try:
            yield
        finally:
            with self._lock:
                if self._waiting:
                    self._waiting.popleft().set()  # the turn passes on: as many run as before
                else:
                    self._running -= 1

    @property
    def busy(self) -> int:
        """How many runs are going or about to: turns held, and turns said to be coming."""
        with self._lock:
            return self._running + self._coming

    @property
    def waiting(self) -> int:
        """How many callers wait for a turn now."""
        with self._lock:
            return len(self._waiting)
