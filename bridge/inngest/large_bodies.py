"""The memory that large bodies at `/api/inngest` hold before their signatures are
checked: bounded, counted in bytes that came, and made room in by cutting off the old.

Until a body has come whole and its signature is checked, nothing tells a call Inngest
signed from one with a made-up signature. A body that is slow to come (or slow to get
its check) is what holds memory; a call from Inngest's server comes whole in a moment.
So when a new body's bytes would go over the bound, the bodies that started more than
EVICTABLE_AFTER_SECONDS ago and are still coming or waiting for their check are cut
off, oldest first (503 with Retry-After: Inngest sends the call again), to make room;
only when that is not enough is the new one refused (503). A body being checked (in a
worker thread, under a second) is never cut off. Holding the whole bound against a
signed call then takes sending all of it anew every EVICTABLE_AFTER_SECONDS, not once
per body deadline (BODY_READ_SECONDS, 30 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bridge.bodies import Refused

EVICTABLE_AFTER_SECONDS = 2.0
BUSY = "busy checking the signatures of other large requests"
CUT_OFF = (
    f"cut off to make room for newer large requests (over {EVICTABLE_AFTER_SECONDS:g} s on its way)"
)


class LargeBody:
    """One large body's share of the bound, from its first byte to the end of its check."""

    def __init__(self, bodies: LargeBodies, started: float) -> None:
        self.bodies, self.started = bodies, started
        self.size = 0  # its bytes counted against the bound
        self.checking = False  # its check has begun: it cannot be cut off any more
        self.cut_off = False
        self._switch: asyncio.Timeout | None = None  # fired, it ends the body's reading

    def hold(self, size: int) -> None:
        """Count `size` more bytes of this body: room is made (see the module) or the
        body refused (503)."""
        if self.cut_off:  # its chunk came before the cut reached it
            raise Refused(503, CUT_OFF, retry_after=1)
        self.bodies.make_room(size, self)
        self.bodies.held += size
        self.size += size

    def can_be_cut_off(self, now: float) -> bool:
        return (
            self._switch is not None
            and not self.checking
            and not self.cut_off
            and now - self.started >= EVICTABLE_AFTER_SECONDS
        )

    def cut(self, now: float) -> None:
        """Give its bytes back now and end its reading (or its wait for a check) at once."""
        self.cut_off = True
        self.bodies.held -= self.size
        self.size = 0
        if self._switch is not None:
            self._switch.reschedule(now)


class LargeBodies:
    """The large bodies being read, waiting for their check or checked: `held` bytes."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.held = 0
        self._bodies: dict[LargeBody, None] = {}  # oldest first

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[LargeBody]:
        """A new body's share, given back when the block ends; a body cut off ends the
        block with 503 (Refused)."""
        loop = asyncio.get_running_loop()
        body = LargeBody(self, loop.time())
        self._bodies[body] = None
        try:
            async with asyncio.timeout(None) as switch:
                body._switch = switch
                yield body
        except TimeoutError:
            if body.cut_off:
                raise Refused(503, CUT_OFF, retry_after=1) from None
            raise
        finally:
            body._switch = None
            del self._bodies[body]
            self.held -= body.size

    def make_room(self, size: int, newcomer: LargeBody) -> None:
        if self.held + size <= self.bound:
            return
        now = asyncio.get_running_loop().time()
        for body in list(self._bodies):
            if self.held + size <= self.bound:
                return
            if body is not newcomer and body.can_be_cut_off(now):
                body.cut(now)
        if self.held + size > self.bound:
            raise Refused(503, BUSY, retry_after=1)
