"""The Celery worker's part in the metrics.

Its prefork children write to PROMETHEUS_MULTIPROC_DIR like the web's uvicorn workers:
on one host the web's /metrics adds them up. A worker on another host serves its own
(the same aggregate of its host's directory, without the database gauges) on
METRICS_PORT (on METRICS_ADDR, loopback by default), started in the main process on
worker_init, before the pool forks.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_shutdown
from prometheus_client import start_http_server

from bridge.metrics import multiprocess_dir, process_exited, process_registry
from config import get_settings

log = logging.getLogger("jobbridge.metrics")


def connect_worker_metrics(app: Celery) -> None:
    def on_worker_init(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:  # this app's worker, not another's
            return
        port = get_settings().metrics_port
        if port is None:
            return
        if multiprocess_dir() is None:
            log.warning(
                "METRICS_PORT without PROMETHEUS_MULTIPROC_DIR: the pool's children "
                "count in memory of their own, which this port cannot show"
            )
        addr = str(get_settings().metrics_addr)
        try:
            start_http_server(port, addr=addr, registry=process_registry())
        except OSError as error:  # the worker runs on; its metrics are not served
            log.error(
                "metrics NOT served: METRICS_PORT %d on %s cannot be used (%s); set "
                "METRICS_PORT (or METRICS_ADDR) to one this worker can listen on",
                port,
                addr,
                error.strerror or error,
            )
            return
        log.info("metrics served on %s port %d", addr, port)

    def on_process_shutdown(pid: int | None = None, **_: Any) -> None:
        # prometheus-client's multiprocess bookkeeping: a child's live gauges go with it.
        process_exited(pid)

    worker_init.connect(on_worker_init, weak=False)
    worker_process_shutdown.connect(on_process_shutdown, weak=False)
