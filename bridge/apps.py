"""The app on the shim, found by module name as Celery's `-A` finds its app.

`JOBBRIDGE_APP` (default `tasks`) names a module that holds:
- `registry` (required): a `bridge.Registry` with every job and cron declared on it;
- `commands` (optional): a `typer.Typer` whose commands and groups join `jobbridge`;
- `add_routes` (optional): `(FastAPI, Settings) -> None`, routes of the app's own;
- `audit` (optional): an `AppAudit`, what `jobbridge audit` and `status` count;
- `prepare_dev` (optional): `(Settings) -> list[str]`, run by `jobbridge dev` first
  (migrate, seed); the lines it returns are printed.
The shim never imports the app by name: it imports the module named here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from bridge.celery.deferred import RELEASE_DEFERRED
from bridge.registry import Registry
from config import ConfigError, Settings


class AuditResult(Protocol):
    def as_json(self) -> dict[str, Any]: ...

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) lines for the audit table, in order."""
        ...

    def summary(self) -> str:
        """One line for `jobbridge status`."""
        ...


class AppAudit(Protocol):
    title: str  # what is counted, e.g. "scheduled actions"
    json_key: str  # its key in `jobbridge audit --json`

    def collect(self, connection: Any, now: datetime | None = None) -> AuditResult:
        """Counts from the database (a SQLAlchemy Connection); may raise SQLAlchemyError."""
        ...


@dataclass(frozen=True)
class App:
    module: str
    registry: Registry
    commands: Any | None = None  # a typer.Typer
    add_routes: Callable[[Any, Settings], None] | None = None
    audit: AppAudit | None = None
    prepare_dev: Callable[[Settings], Sequence[str]] | None = None


@lru_cache(maxsize=8)
def load_app(module_name: str) -> App:
    """Import the app's module and collect what it offers; ConfigError if it is not one."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is None or not module_name.startswith(error.name):
            raise  # the app itself imports something missing: its own bug, shown as such
        raise ConfigError(
            f"JOBBRIDGE_APP: no module named {module_name!r}; set it to the module that "
            "holds your app's `registry` (default: tasks), importable from this directory"
        ) from None
    registry = getattr(module, "registry", None)
    if not isinstance(registry, Registry):
        raise ConfigError(
            f"JOBBRIDGE_APP: module {module_name!r} has no `registry` (a bridge.Registry "
            "with the app's jobs declared on it)"
        )
    with_shim_crons(registry)
    return App(
        module=module_name,
        registry=registry,
        commands=getattr(module, "commands", None),
        add_routes=getattr(module, "add_routes", None),
        audit=getattr(module, "audit", None),
        prepare_dev=getattr(module, "prepare_dev", None),
    )


def with_shim_crons(registry: Registry) -> Registry:
    """Every app gets the shim's own periodic work beside its crons."""
    registry.add_cron(RELEASE_DEFERRED)
    return registry
