"""Scale-from-zero: while requests wait for a deployment that has no ready pod, make sure it wakes.

One task per deployment runs while its queue is non-empty and it has no ready endpoint. It asks
``scale_up`` (the scale subresource, 0 -> 1 only) whenever the cached spec says zero replicas —
again after ``repatch_after`` seconds if something put it back to zero, after
``retry_failed_after`` if the call failed (the apiserver away) — and fails the waiting requests if
the deployment disappears. Once pods exist it asks ``probe`` on every poll whether one of them already
answers its readiness check, so waiting requests go to a pod as soon as its model is ready rather
than a kubelet probe period later (ADR 0038). The I/O is injected, so the unit tests drive it with fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from .dispatch import Dispatcher, ModelGone
from .routing import Endpoint

log = logging.getLogger("tts_api.activation")

# what scale_up reports
SCALED = "scaled"  # spec.replicas was 0 and is now 1
NOT_AT_ZERO = "not_at_zero"  # someone else already raised it
CONFLICT = "conflict"  # it changed under us: look again at once
GONE = "gone"
FAILED = "error"


class Activator:
    def __init__(
        self,
        dispatcher: Dispatcher,
        endpoints: Callable[[str], list[Endpoint]],
        spec_replicas: Callable[[str], int | None],
        scale_up: Callable[[str], Awaitable[str]],
        probe: Callable[[str], Awaitable[bool]] | None = None,
        record: Callable[[str, str], None] | None = None,
        poll: float = 0.05,
        repatch_after: float = 10.0,
        retry_failed_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dispatcher = dispatcher
        self.endpoints = endpoints
        self.spec_replicas = spec_replicas
        self.scale_up = scale_up
        self.probe = probe
        self.record = record or (lambda _model, _result: None)
        self.poll = poll
        self.repatch_after = repatch_after
        self.retry_failed_after = retry_failed_after
        self.clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._early: dict[str, asyncio.Task[None]] = {}

    def waking(self, model: str) -> bool:
        task = self._tasks.get(model)
        return task is not None and not task.done()

    def kick(self, model: str) -> None:
        """A request waits for ``model``: start its waker unless one runs."""
        if not self.waking(model):
            self._tasks[model] = asyncio.create_task(self._wake(model), name=f"wake-{model}")

    def prewake(self, model: str) -> None:
        """``model`` will be asked for soon (a later role of a script): if it is at zero, raise it
        now, once, so that its load overlaps what comes before. Nothing waits for it: a request that
        comes while the model loads waits and is served as any other (``kick``)."""
        early = self._early.get(model)
        if self.spec_replicas(model) == 0 and not self.waking(model) and (early is None or early.done()):
            self._early[model] = asyncio.create_task(self._scale_once(model), name=f"prewake-{model}")

    async def _scale_once(self, model: str) -> None:
        result = await self.scale_up(model)
        self.record(model, result)
        if result == SCALED:
            log.info("woke %s ahead of a script's line for it", model)

    async def _wake(self, model: str) -> None:
        next_try = float("-inf")
        while self.dispatcher.queued(model) and not self.endpoints(model):
            replicas = self.spec_replicas(model)
            if replicas is None:
                self.dispatcher.fail_all(model, ModelGone(model))
                return
            if replicas == 0 and self.clock() >= next_try:
                tried = self.clock()
                result = await self.scale_up(model)
                self.record(model, result)
                next_try = tried + self.repatch_after
                if result == SCALED:
                    log.info("woke %s: scaled 0 -> 1 for %d waiting request(s)", model, self.dispatcher.queued(model))
                elif result == CONFLICT:
                    next_try = float("-inf")
                elif result == FAILED:
                    # the apiserver was away or refused: try again soon, not a whole re-patch period later
                    next_try = tried + self.retry_failed_after
                elif result == GONE:
                    self.dispatcher.fail_all(model, ModelGone(model))
                    return
            elif replicas > 0 and self.probe is not None and await self.probe(model):
                self.dispatcher.dispatch(model)
                continue
            await asyncio.sleep(self.poll)

    async def close(self) -> None:
        tasks = [*self._tasks.values(), *self._early.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._early.clear()
