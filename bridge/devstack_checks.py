"""What `jobbridge dev` checks before it starts anything: web's and Flower's ports free,
the broker answering. Each problem is one plain line naming the port or the variable
and the fix, instead of an error buried in the started processes' logs."""

from __future__ import annotations

import errno
import socket

from bridge.celery.config import make_embedded_broker_folders
from bridge.ops.probes import broker_fix, check_broker
from config import Settings


class StackCannotStart(Exception):
    """What keeps the stack from starting, found before anything started: one plain line
    each, naming the port or the variable and the fix."""


# How long the broker may take to answer before the stack refuses to start: as long as
# `jobbridge status` gives it.
BROKER_PROBE_SECONDS = 2.0


def stack_blockers(
    settings: Settings, *, port: int, flower_port: int, with_flower: bool
) -> list[str]:
    """Everything that would stop the stack once started, one line each: web's and
    Flower's ports taken (uvicorn and Flower would fail, their errors buried under the
    others' start-up logs), the broker down (worker and beat would retry it forever)."""
    return [
        *_port_blockers(port, flower_port, with_flower),
        *_metrics_port_blockers(settings, (port, flower_port) if with_flower else (port,)),
        *_broker_blockers(settings),
    ]


def _metrics_port_blockers(settings: Settings, others: tuple[int, ...]) -> list[str]:
    """The worker's METRICS_PORT, when the user set it (else the stack picks a free one):
    taken, or one of the stack's other ports, the worker would run without its metrics,
    its banner line pointing elsewhere."""
    port = settings.metrics_port
    if port is None:
        return []
    fix = "set METRICS_PORT to a free port, or unset it (jobbridge dev then picks one)"
    if port in others:
        return [f"METRICS_PORT {port} is also the stack's web or Flower port: {fix}"]
    name = "the worker's metrics, METRICS_PORT"
    found = _port_blocker(port, name, fix, address=str(settings.metrics_addr))
    return [] if found is None else [found]


def _port_blockers(port: int, flower_port: int, with_flower: bool) -> list[str]:
    web_fix = "run jobbridge dev --port N"
    flower_fix = "run jobbridge dev --flower-port N (or --no-flower)"
    found = [_port_blocker(port, "web", web_fix)]
    if with_flower:
        found.append(_port_blocker(flower_port, "Flower", flower_fix))
    return [line for line in found if line is not None]


def _port_blocker(port: int, name: str, fix: str, address: str = "127.0.0.1") -> str | None:
    """Why `name` could not listen on `address`:`port`, as web and Flower (on loopback)
    and the worker's metrics do, or None. With SO_REUSEADDR, as uvicorn, Tornado (Flower's
    server) and Python's HTTP server set it: a port that only last connections still hold
    (TIME_WAIT) is free to them."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return f"port {port} ({name}) is in use: stop what holds it, or {fix}"
            return f"port {port} ({name}) cannot be used ({error.strerror}): {fix}"
    return None


def _broker_blockers(settings: Settings) -> list[str]:
    """The broker, probed as `jobbridge status` does (its folders made first, as any
    process on the embedded broker makes them)."""
    make_embedded_broker_folders(settings)
    check = check_broker(settings, BROKER_PROBE_SECONDS)
    if not check.failing:
        return []
    return [f"the Celery broker is unreachable ({check.detail}): {broker_fix(settings)}"]
