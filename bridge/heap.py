"""The heap a long-running process builds at start, made whole and kept out of the
cyclic collector.

Modules, settings, the app and its routes live as long as the process. Left in the
collector's generations, every full collection walks all of them again: in a web
worker under load that pass stalled every request it held for tens of milliseconds
(most of the p99 at 64 connections in bench/receivers.py). Frozen (`gc.freeze`), a
collection scans only what requests and jobs made since. It also spares prefork
children from copying the pages those objects sit on when a collection touches them.

SQLAlchemy configures the ORM's mappers (their relationships and columns, for every
model declared) at the first query: about 20 ms of a process's first delivery, with
the objects it builds left to the collector. Configured here, it is paid at start and
frozen: once in Celery's main process for all its prefork children, by each web worker
(uvicorn spawns them) before its first request. A model that cannot be configured (the
app's bug) raises here, after the heap is frozen all the same.
"""

from __future__ import annotations

import gc

from sqlalchemy.orm import configure_mappers


def freeze_startup_heap() -> None:
    """Configure the mappers declared so far, collect once, then move every object left
    into the permanent generation."""
    try:
        configure_mappers()
    finally:
        gc.collect()
        gc.freeze()
