"""The heap a long-running process builds at start, kept out of the cyclic collector.

Modules, settings, the app and its routes live as long as the process. Left in the
collector's generations, every full collection walks all of them again: in a web
worker under load that pass stalled every request it held for tens of milliseconds
(most of the p99 at 64 connections in bench/receivers.py). Frozen (`gc.freeze`), a
collection scans only what requests and jobs made since. It also spares prefork
children from copying the pages those objects sit on when a collection touches them.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect once, then move every object left into the permanent generation."""
    gc.collect()
    gc.freeze()
