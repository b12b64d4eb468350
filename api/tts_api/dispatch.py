"""The hold queue: every speech request takes a ticket for a slot on a ready pod of its deployment.

A ticket is granted at once when a pod has a free slot and nobody waits ahead of it; otherwise it
joins a bounded per-deployment FIFO queue and is granted, in arrival order, when a slot frees or
a pod becomes ready. No I/O here: the router calls ``dispatch()`` when its pod cache changes, and
the unit tests drive it directly.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .routing import Endpoint, LeastOutstanding


class QueueFull(Exception):
    """The deployment's hold queue is at its bound."""


class ModelGone(Exception):
    """The deployment was deleted while requests waited for it."""


@dataclass(eq=False)
class Ticket:
    model: str
    arrived: float
    future: asyncio.Future[Endpoint]
    # pods this request must not go to again (they refused the connection or closed it unanswered),
    # with their container restarts then: once a pod's container has restarted, it is a new server
    # and no longer excluded (else a request whose only pod restarted in place would wait for good)
    exclude: dict[str, int] = field(default_factory=dict)
    endpoint: Endpoint | None = None
    finished: bool = False

    @property
    def granted(self) -> bool:
        return self.endpoint is not None

    def excluded(self, endpoints: list[Endpoint]) -> set[str]:
        """The pods among ``endpoints`` this request must not go to: those it failed on, unless restarted since."""
        return {e.pod for e in endpoints if e.pod in self.exclude and e.restarts <= self.exclude[e.pod]}


class Dispatcher:
    def __init__(
        self,
        balancer: LeastOutstanding,
        endpoints: Callable[[str], list[Endpoint]],
        queue_size: int,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.balancer = balancer
        self.endpoints = endpoints
        self.queue_size = queue_size
        self.clock = clock
        self.wall_clock = wall_clock
        self._queues: dict[str, deque[Ticket]] = {}
        self._inflight: dict[str, int] = {}
        # unix time the last request of each deployment finished
        self.last_finished: dict[str, float] = {}

    # --- what the metrics and status read -----------------------------------------------------

    def queued(self, model: str) -> int:
        return len(self._queues.get(model, ()))

    def inflight(self, model: str) -> int:
        return self._inflight.get(model, 0)

    def models(self) -> set[str]:
        """Deployments with requests waiting, in flight, or finished since the router started."""
        return {*self._queues, *self._inflight, *self.last_finished}

    def position(self, ticket: Ticket) -> int:
        """1-based place in the queue; 0 once granted."""
        queue = self._queues.get(ticket.model)
        if ticket.granted or not queue or ticket not in queue:
            return 0
        return queue.index(ticket) + 1

    # --- the ticket's life ----------------------------------------------------------------------

    def enter(self, model: str) -> Ticket:
        """A ticket for ``model``: granted now if possible, else queued; ``QueueFull`` at the bound."""
        ticket = Ticket(model, self.clock(), asyncio.get_running_loop().create_future())
        queue = self._queues.get(model)
        if not queue:
            endpoint = self.balancer.pick(self.endpoints(model))
            if endpoint is not None:
                self._grant(ticket, endpoint)
                return ticket
        if self.queued(model) >= self.queue_size:
            raise QueueFull(model)
        self._queues.setdefault(model, deque()).append(ticket)
        return ticket

    async def wait(self, ticket: Ticket, seconds: float) -> Endpoint:
        """The granted endpoint; ``TimeoutError`` after ``seconds`` (the ticket leaves the queue)."""
        if ticket.endpoint is not None:
            return ticket.endpoint
        try:
            async with asyncio.timeout(max(seconds, 0)):
                return await asyncio.shield(ticket.future)
        except TimeoutError:
            if ticket.endpoint is not None:  # granted in the same instant: take it
                return ticket.endpoint
            self._withdraw(ticket)
            raise
        except asyncio.CancelledError:
            self._withdraw(ticket)
            raise

    def retry_elsewhere(self, ticket: Ticket) -> None:
        """The granted pod refused the connection: give the slot back and wait for another pod, first in line."""
        assert ticket.endpoint is not None
        ticket.exclude[ticket.endpoint.pod] = ticket.endpoint.restarts
        self._give_back(ticket)
        ticket.future = asyncio.get_running_loop().create_future()
        endpoints = self.endpoints(ticket.model)
        endpoint = self.balancer.pick(endpoints, exclude=ticket.excluded(endpoints))
        if endpoint is not None:
            self._grant(ticket, endpoint)
        else:
            self._queues.setdefault(ticket.model, deque()).appendleft(ticket)
        self.dispatch(ticket.model)

    def finish(self, ticket: Ticket) -> None:
        """The request is over (answered, failed or abandoned): free its slot or its place in the queue."""
        if ticket.finished:
            return
        ticket.finished = True
        if ticket.endpoint is not None:
            self._give_back(ticket)
        else:
            self._withdraw(ticket)
        self.last_finished[ticket.model] = self.wall_clock()
        self.dispatch(ticket.model)

    # --- granting -------------------------------------------------------------------------------

    def dispatch(self, model: str) -> None:
        """Grant waiting tickets of ``model`` in arrival order while pods have free slots."""
        queue = self._queues.get(model)
        if not queue:
            return
        endpoints = self.endpoints(model)
        for ticket in list(queue):
            endpoint = self.balancer.pick(endpoints, exclude=ticket.excluded(endpoints))
            if endpoint is None:
                if not ticket.exclude:
                    break  # nobody behind it can be served either: strict FIFO
                continue  # a retry that only its excluded pods could take; others may still fit
            queue.remove(ticket)
            self._grant(ticket, endpoint)
        if not queue:
            self._queues.pop(model, None)

    def dispatch_all(self) -> None:
        for model in list(self._queues):
            self.dispatch(model)

    def fail_all(self, model: str, exc: Exception) -> None:
        """Answer every waiting ticket of ``model`` with ``exc`` (the deployment is gone)."""
        for ticket in self._queues.pop(model, deque()):
            if not ticket.future.done():
                ticket.future.set_exception(exc)

    def _grant(self, ticket: Ticket, endpoint: Endpoint) -> None:
        ticket.endpoint = endpoint
        self._inflight[ticket.model] = self._inflight.get(ticket.model, 0) + 1
        if not ticket.future.done():
            ticket.future.set_result(endpoint)

    def _give_back(self, ticket: Ticket) -> None:
        assert ticket.endpoint is not None
        self.balancer.release(ticket.endpoint)
        ticket.endpoint = None
        left = self._inflight.get(ticket.model, 0) - 1
        if left > 0:
            self._inflight[ticket.model] = left
        else:
            self._inflight.pop(ticket.model, None)

    def _withdraw(self, ticket: Ticket) -> None:
        if ticket.endpoint is not None:  # granted while its waiter went away
            self._give_back(ticket)
            self.dispatch(ticket.model)
        queue = self._queues.get(ticket.model)
        if queue and ticket in queue:
            queue.remove(ticket)
            if not queue:
                self._queues.pop(ticket.model, None)
        if not ticket.future.done():
            ticket.future.cancel()
