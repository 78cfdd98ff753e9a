"""The app on the shim, found by module name as Celery's `-A` finds its app.

`JOBBRIDGE_APP` (default `tasks`) names a module that holds:
- `registry` (required): a `bridge.Registry` with every job and cron declared on it;
- `commands` (optional): a `typer.Typer` whose commands and groups join `jobbridge`;
- `add_routes` (optional): `(FastAPI, Settings) -> None`, routes of the app's own;
- `audit` (optional): an `AppAudit`, what `jobbridge audit` and `status` count and
  what the `/status` page shows of the app's recent work;
- `prepare_dev` (optional): `(Settings) -> list[str]`, run by `jobbridge dev` first
  (migrate, seed); the lines it returns are printed;
- `settings_models` (optional): the app's own pydantic-settings classes, which
  `jobbridge config` reads and prints beside the shim's (secrets masked).
The shim never imports the app by name: it imports the module named here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from pydantic_settings import BaseSettings

from bridge.activity import Activity
from bridge.celery.deferred import RELEASE_DEFERRED, release_deferred_cron
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

    # Inngest event ids of deliveries the app no longer needs (the work was cancelled or
    # done another way) whose runs Inngest may still hold, asleep until their time: the
    # soonest first, at most a few hundred; and how many there are in all. `audit` asks
    # Inngest which of them still have a run.
    # Read-only members: an app's result may be frozen.
    @property
    def settled_inngest_events(self) -> tuple[str, ...]: ...

    @property
    def settled_inngest_total(self) -> int: ...

    # Work still to be delivered, by the provider it was last published to ("qstash": what
    # QStash still has to deliver). The status page's verdict on removing QSTASH_* reads it.
    @property
    def pending_by_provider(self) -> dict[str, int]: ...


class AppAudit(Protocol):
    title: str  # what is counted, e.g. "scheduled actions"
    json_key: str  # its key in `jobbridge audit --json`

    def collect(self, connection: Any, now: datetime | None = None) -> AuditResult:
        """Counts from the database (a SQLAlchemy Connection); may raise SQLAlchemyError."""
        ...

    def activity(self, connection: Any, now: datetime, hours: int) -> Activity:
        """The `/status` page's view of the last `hours`: work done per minute by the
        provider that ran it, and tables (recent failures, stuck work). Same database
        rules as `collect`."""
        ...


class AppImportFailed(ConfigError):
    """The app's module exists but importing it raised (its own bug or a missing package)."""

    def __init__(self, module_name: str, error: Exception) -> None:
        super().__init__(
            f"JOBBRIDGE_APP: importing {module_name!r} failed: {type(error).__name__}: {error}"
            " (run with --debug or JOBBRIDGE_DEBUG=1 for the traceback)"
        )


@dataclass(frozen=True)
class App:
    module: str
    registry: Registry
    commands: Any | None = None  # a typer.Typer
    add_routes: Callable[[Any, Settings], None] | None = None
    audit: AppAudit | None = None
    prepare_dev: Callable[[Settings], Sequence[str]] | None = None
    settings_models: Sequence[type[BaseSettings]] = ()


@lru_cache(maxsize=8)
def load_app(module_name: str) -> App:
    """Import the app's module and collect what it offers; ConfigError if it is not one."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name and not module_name.startswith(f"{error.name}."):
            raise AppImportFailed(module_name, error) from error
        raise ConfigError(
            f"JOBBRIDGE_APP: no module named {module_name!r}; set it to the module that "
            "holds your app's `registry` (default: tasks), importable from this directory"
        ) from None
    except Exception as error:  # the app's own code failed: its bug, named as such
        raise AppImportFailed(module_name, error) from error
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
        settings_models=tuple(getattr(module, "settings_models", ())),
    )


def with_shim_crons(registry: Registry) -> Registry:
    """Every app gets the shim's own periodic work beside its crons."""
    if RELEASE_DEFERRED not in registry.crons:
        registry.add_cron(release_deferred_cron(registry))
    return registry
