"""`celery flower` as `jobbridge dev` runs it: the same command, stopping cleanly on
SIGTERM.

Flower's own SIGTERM handler raises SystemExit wherever the main thread happens to be;
landing in a weakref callback, it is printed as an ignored exception with a traceback
and Flower runs on until it is killed (its history unsaved). Here SIGTERM stops
Tornado's loop from the loop itself: Flower's start returns, and its exit hook saves
the history (`--persistent`) as on any clean stop.

Run as `python -m bridge.devstack_flower -A <app> flower ...` (celery's arguments).
"""

from __future__ import annotations

from types import FrameType

import flower.command
from celery.__main__ import main
from tornado.ioloop import IOLoop


def _stop_the_loop(_signum: int, _frame: FrameType | None) -> None:
    loop = IOLoop.current()
    loop.asyncio_loop.call_soon_threadsafe(loop.stop)  # type: ignore[attr-defined]


flower.command.sigterm_handler = _stop_the_loop  # read when flower's command starts

if __name__ == "__main__":
    main()
