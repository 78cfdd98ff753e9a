"""`uvicorn bridge.web:app` serves every job of the app for every provider.

`app` is built when first asked for (uvicorn asks once, at start): building it reads the
environment and imports the app on the shim, which importing this package must not do.
A bad environment ends the process there with the plain message (each variable and its
fix) and exit status 2, as the CLI and `celery -A tasks` do: no traceback.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import FastAPI

from bridge.heap import freeze_startup_heap
from bridge.web.factory import create_app
from config import ConfigError
from config.exiting import exit_plainly, get_settings_or_exit


@cache
def _asgi_app() -> FastAPI:
    try:
        app = create_app(get_settings_or_exit())
        freeze_startup_heap()  # what serving allocates is all the collector walks from now on
    except ConfigError as error:  # JOBBRIDGE_APP names no app, or the app failed to import
        exit_plainly(error)
    except AttributeError as error:
        # Raised through __getattr__, it would read as "no attribute app" to uvicorn.
        raise RuntimeError(f"building the web app failed: {error}") from error
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return _asgi_app()
    raise AttributeError(f"module 'bridge.web' has no attribute {name!r}")


__all__ = ["app", "create_app"]
