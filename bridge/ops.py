"""What the operator commands (`jobbridge keys|audit|sync|status`) compute, without the CLI.

Every probe here is bounded in time: a status or an audit that hangs on a dead host is
worse than one that says "down" after two seconds.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from inngest._internal.net import sign_request
from sqlalchemy import Connection, Engine, case, create_engine, func, make_url, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from config import ProviderChain, Settings, resolve_chain

# `tasks` is imported inside the functions that need it: importing it builds the Celery
# app from Settings, and `jobbridge keys` must work before there is a valid configuration.

T = TypeVar("T")

# --------------------------------------------------------------------------- keys

EVENT_KEY_BYTES = 16
SIGNING_KEY_BYTES = 32


@dataclass(frozen=True)
class InngestKeys:
    event_key: str
    signing_key: str

    def env(self) -> dict[str, str]:
        return {"INNGEST_EVENT_KEY": self.event_key, "INNGEST_SIGNING_KEY": self.signing_key}


def generate_keys() -> InngestKeys:
    # Plain lowercase hex, no `signkey-<env>-` prefix: `inngest start` takes the signing
    # key as hex and hashes it with bytes.fromhex, and Settings accepts it as is.
    return InngestKeys(
        event_key=secrets.token_hex(EVENT_KEY_BYTES),
        signing_key=secrets.token_hex(SIGNING_KEY_BYTES),
    )


@dataclass(frozen=True)
class EnvFileUpdate:
    written: list[str]
    kept: list[str]


_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def _is_empty(value: str) -> bool:
    # `NAME=`, `NAME=""`, `NAME=''` or `NAME= # comment` (as .env.example ships them)
    # mean unset to Settings.
    text = "" if value.strip().startswith("#") else value.split(" #", 1)[0].strip()
    return text in {"", '""', "''"}


def write_env_file(path: Path, values: dict[str, str]) -> EnvFileUpdate:
    """Add `values` to a dotenv file, never changing a variable that already has a value.

    dotenv's last assignment wins, so that is the one looked at: a variable whose last
    assignment is empty is filled in on that line (one assignment per name keeps the file
    readable); one never assigned is appended. The file is replaced atomically (a crash
    must not leave a half-written .env) and a new one is private, since it holds secrets.
    """
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    last: dict[str, tuple[int, str]] = {}  # name -> (line index, value) of its last assignment
    for index, line in enumerate(lines):
        match = _ASSIGNMENT.match(line)
        if match and match.group(1) in values:
            last[match.group(1)] = (index, match.group(2))
    kept: list[str] = []
    written: list[str] = []
    for name, value in values.items():
        if name not in last:
            lines.append(f"{name}={value}")
        elif _is_empty(last[name][1]):
            lines[last[name][0]] = f"{name}={value}"
        else:
            kept.append(name)
            continue
        written.append(name)
    if written:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(temporary, path)
    return EnvFileUpdate(written=written, kept=kept)


# --------------------------------------------------------------------------- audit


@dataclass(frozen=True)
class ScheduledActionsAudit:
    by_status: dict[str, int]
    pending: int
    oldest_pending: datetime | None
    due_unexecuted: int
    stuck_executing: int
    # Where PENDING rows were last published (the `scheduled_provider` column): during a
    # migration the "qstash" count is what QStash still has to deliver.
    pending_by_provider: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        return {
            "byStatus": self.by_status,
            "pending": {
                "count": self.pending,
                "oldestScheduledFor": _iso(self.oldest_pending),
            },
            "dueUnexecuted": self.due_unexecuted,
            "stuckExecuting": self.stuck_executing,
            "pendingByProvider": self.pending_by_provider,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def audit_scheduled_actions(
    connection: Connection, now: datetime | None = None
) -> ScheduledActionsAudit:
    """Counts straight from the indexed columns: a handful of aggregate queries, no rows."""
    from tasks.models import ActionStatus, ScheduledAction

    now = now or datetime.now(UTC)
    table = ScheduledAction
    by_status: dict[str, int] = {status.value: 0 for status in ActionStatus}
    for status, count in connection.execute(
        select(table.status, func.count()).group_by(table.status)
    ):
        by_status[ActionStatus(status).value] = int(count)

    pending_filter = table.status == ActionStatus.PENDING
    oldest, due = connection.execute(
        select(
            func.min(table.scheduled_for),
            func.coalesce(func.sum(case((table.scheduled_for <= now, 1), else_=0)), 0),
        ).where(pending_filter)
    ).one()

    # A NULL lease on an EXECUTING row should not exist; if one does, nothing will ever
    # release it (the sweep only reclaims expired leases), so it is stuck too.
    stuck = connection.scalar(
        select(func.count()).where(
            table.status == ActionStatus.EXECUTING,
            or_(table.lease_expires_at < now, table.lease_expires_at.is_(None)),
        )
    )
    by_provider: dict[str, int] = {}
    for provider, count in connection.execute(
        select(table.scheduled_provider, func.count())
        .where(pending_filter)
        .group_by(table.scheduled_provider)
    ):
        by_provider[provider or "unpublished"] = int(count)

    return ScheduledActionsAudit(
        by_status=by_status,
        pending=by_status[ActionStatus.PENDING.value],
        oldest_pending=oldest,
        due_unexecuted=int(due),
        stuck_executing=int(stuck or 0),
        pending_by_provider=dict(sorted(by_provider.items())),
    )


@dataclass(frozen=True)
class QueueInfo:
    name: str
    lag: int
    paused: bool
    parallelism: int


@dataclass(frozen=True)
class QStashAudit:
    queues: list[QueueInfo] = field(default_factory=list)
    dlq_size: int | None = None
    # The DLQ is counted page by page up to a cap; past it the size is a lower bound.
    dlq_size_is_lower_bound: bool = False
    latency_ms: float | None = None
    error: str | None = None

    @property
    def total_lag(self) -> int:
        return sum(queue.lag for queue in self.queues)

    def as_json(self) -> dict[str, Any]:
        return {
            "queues": [
                {"name": q.name, "lag": q.lag, "paused": q.paused, "parallelism": q.parallelism}
                for q in self.queues
            ],
            "totalLag": self.total_lag,
            "dlqSize": self.dlq_size,
            "dlqSizeIsLowerBound": self.dlq_size_is_lower_bound,
            "error": self.error,
        }


DLQ_PAGE = 100  # the API's maximum page size
DLQ_MAX_PAGES = 100


def qstash_client(settings: Settings, timeout: float) -> Any:
    from qstash import QStash

    assert settings.qstash_token is not None
    # retry=False: the SDK would otherwise retry a dead host five times with backoff.
    client = QStash(
        settings.qstash_token.get_secret_value(), retry=False, base_url=settings.qstash_url
    )
    # The SDK's own timeout is 600 s and not configurable; an operator command must not
    # wait that long for an answer.
    client.http._client.timeout = httpx.Timeout(timeout)
    return client


def qstash_queues(settings: Settings, timeout: float = 5.0) -> QStashAudit:
    """The queues with their lag: one authenticated GET, also the reachability probe."""
    started = time.perf_counter()
    try:
        queues = qstash_client(settings, timeout).queue.list()
    except Exception as error:
        return QStashAudit(error=describe(error))
    return QStashAudit(
        queues=[QueueInfo(q.name, int(q.lag), bool(q.paused), int(q.parallelism)) for q in queues],
        latency_ms=_ms_since(started),
    )


def audit_qstash(settings: Settings, timeout: float = 5.0) -> QStashAudit:
    """Queues (name, lag, paused) and the DLQ's size. The DLQ API has no count: it is paged
    through (ids only matter), up to DLQ_MAX_PAGES pages."""
    found = qstash_queues(settings, timeout)
    if found.error is not None:
        return found
    client = qstash_client(settings, timeout)
    size, cursor, pages = 0, None, 0
    try:
        while True:
            page = client.dlq.list(cursor=cursor, count=DLQ_PAGE)
            size += len(page.messages)
            pages += 1
            cursor = page.cursor
            if not cursor or pages >= DLQ_MAX_PAGES:
                break
    except Exception as error:
        return QStashAudit(queues=found.queues, latency_ms=found.latency_ms, error=describe(error))
    return QStashAudit(
        queues=found.queues,
        dlq_size=size,
        dlq_size_is_lower_bound=bool(cursor),
        latency_ms=found.latency_ms,
    )


# --------------------------------------------------------------------------- sync

DEFAULT_APP_URL = "http://127.0.0.1:8000"
SERVE_PATH = "/api/inngest"


@dataclass(frozen=True)
class SyncResult:
    url: str
    status: int | None
    error: str | None
    function_count: int | None = None
    body: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None


def sync_url(settings: Settings, url: str | None) -> str:
    base = (url or settings.internal_api_url or DEFAULT_APP_URL).rstrip("/")
    return base if base.endswith(SERVE_PATH) else base + SERVE_PATH


def _registration_error(response: httpx.Response, body: Any) -> str | None:
    if response.status_code == 401:
        refusal = body.get("error") if isinstance(body, dict) else None
        return (
            f"the app refused the sync (401{': ' + str(refusal) if refusal else ''}): run this "
            "command with the app's INNGEST_SIGNING_KEY, which signs it as Inngest would"
        )
    if not isinstance(body, dict):
        return (
            f"HTTP {response.status_code}: the answer is not a JSON object: {response.text[:200]}"
        )
    # The SDK answers 200 with the Inngest server's own body, {"error": ...} included,
    # when registration failed: the body decides, not the status.
    if body.get("error"):
        return str(body["error"])
    if response.status_code >= 400:
        # The SDK's own errors are {"code", "message"}; 401 is {"message": "Unauthorized"}.
        detail = body.get("message") or body.get("code") or response.text[:200]
        code = f" ({body['code']})" if body.get("code") and body.get("message") else ""
        return f"HTTP {response.status_code}{code}: {detail}"
    return None


def _function_count(body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    for name in ("function_count", "functionCount"):
        if isinstance(body.get(name), int):
            return int(body[name])
    if isinstance(body.get("functions"), list):
        return len(body["functions"])
    return None


def sync_app(url: str, signing_key: str | None = None, timeout: float = 60.0) -> SyncResult:
    """PUT the app's serve URL, which makes the SDK register its functions with Inngest.

    The PUT is signed with `signing_key` (the app's) as Inngest signs its own syncs: in
    cloud mode the app registers on nothing else. The timeout outlasts the SDK's own 30 s
    registration call, so its verdict arrives.
    """
    try:
        response = httpx.put(url, headers=_signed(signing_key), timeout=timeout)
    except httpx.HTTPError as unreachable:
        return SyncResult(url, None, f"could not reach {url}: {describe(unreachable)}")
    if response.status_code == 404:
        return SyncResult(
            url,
            404,
            f"{url} is not served (404): is the app running there, with "
            "INNGEST_SIGNING_KEY (or INNGEST_DEV) set?",
        )
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error = _registration_error(response, body)
    if error is not None:
        return SyncResult(url, response.status_code, error, body=body)
    count = _function_count(body)
    if count is None:
        count = _inspected_function_count(url, signing_key, timeout=5.0)
    return SyncResult(url, response.status_code, None, function_count=count, body=body)


def _signed(signing_key: str | None) -> dict[str, str]:
    """Headers for a body-less request to /api/inngest, signed as the Inngest server signs
    its own (the SDK's signer): none without a key, for a dev server verifies nothing."""
    if not signing_key:
        return {}
    return {"X-Inngest-Signature": str(sign_request(b"", signing_key))}


def _inspected_function_count(url: str, signing_key: str | None, timeout: float) -> int | None:
    # Inngest's register answer does not count functions; the SDK's inspection (GET) does.
    # In cloud mode it answers 401 unless signed, hence the app's key. Best effort: a sync
    # that worked stays a success without the count.
    try:
        response = httpx.get(url, headers=_signed(signing_key), timeout=timeout)
        return _function_count(response.json()) if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class Check:
    """One service's line: ok=None means not configured (neither good nor bad)."""

    name: str
    ok: bool | None
    required: bool
    detail: str
    latency_ms: float | None = None

    @property
    def failing(self) -> bool:
        return self.required and self.ok is False

    @property
    def state(self) -> str:
        if self.ok is None:
            return "not configured"
        if self.ok:
            return "up"
        return "DOWN" if self.required else "warning"


@dataclass(frozen=True)
class StatusReport:
    chain: ProviderChain
    checks: list[Check]
    actions: ScheduledActionsAudit | None
    qstash: QStashAudit | None
    checked_at: datetime

    @property
    def healthy(self) -> bool:
        return not any(check.failing for check in self.checks)

    @property
    def down(self) -> list[str]:
        return [check.name for check in self.checks if check.failing]


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def describe(error: BaseException) -> str:
    """One line for an operator: the driver's own error rather than SQLAlchemy's wrapper,
    first line only (drivers add multi-line hints and links a status line cannot hold)."""
    error = getattr(error, "orig", None) or error
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def database_label(settings: Settings) -> str:
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite {url.database}"
    where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
    return f"{url.get_backend_name()} {where}"


@contextmanager
def probe_engine(settings: Settings, timeout: float) -> Iterator[Engine]:
    """An engine of its own with a connect timeout and no pool, so a probe neither waits on
    a dead host for the driver's default (forever, for libpq) nor keeps connections."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        connect_args: dict[str, Any] = {"timeout": timeout}
    else:
        # libpq's connect_timeout is whole seconds, at least 2.
        connect_args = {"connect_timeout": max(2, round(timeout))}
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        yield engine
    finally:
        engine.dispose()


def check_database(
    settings: Settings, timeout: float
) -> tuple[Check, ScheduledActionsAudit | None]:
    label = database_label(settings)
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        # Connecting would create an empty file: say what is missing instead.
        return Check(
            "database", False, True, f"{label}: no such file; run `jobbridge db upgrade`"
        ), None
    started = time.perf_counter()
    try:
        with probe_engine(settings, timeout) as engine, engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
            latency = _ms_since(started)
            try:
                actions = audit_scheduled_actions(connection)
            except SQLAlchemyError as error:
                return (
                    Check(
                        "database",
                        False,
                        True,
                        f"{label}: reachable but the schema is not ({describe(error)}); "
                        "run `jobbridge db upgrade`",
                        latency,
                    ),
                    None,
                )
    except Exception as error:
        return Check("database", False, True, f"{label}: {describe(error)}"), None
    return Check("database", True, True, label, latency), actions


def _redis_label(url: str) -> str:
    parsed = httpx.URL(url)
    return f"redis {parsed.host}:{parsed.port or 6379}{parsed.path or ''}"


def check_broker(settings: Settings, timeout: float) -> Check:
    if settings.redis_url:
        import redis

        label = _redis_label(settings.redis_url)
        started = time.perf_counter()
        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        try:
            client.ping()
        except Exception as error:
            return Check("redis", False, True, f"{label}: {describe(error)}")
        finally:
            client.close()
        return Check("redis", True, True, label, _ms_since(started))
    folder = settings.broker_folder / "queue"
    if not (folder.is_dir() and os.access(folder, os.W_OK)):
        return Check(
            "broker",
            False,
            True,
            f"filesystem broker: {folder} is missing or not writable (set DATA_DIR or REDIS_URL)",
        )
    return Check("broker", True, True, f"filesystem broker {folder}")


def inngest_configured(settings: Settings) -> bool:
    return settings.inngest_publishes or settings.inngest_serves


def inngest_api_origin(settings: Settings) -> str:
    from bridge.inngest_client import inngest_origin

    origin = inngest_origin(settings)
    if origin:
        return origin
    # The SDK's defaults (docs/PROTOCOLS.md, "Client and modes"): dev server on
    # loopback, else Inngest Cloud.
    return "http://127.0.0.1:8288" if settings.inngest_is_dev else "https://api.inngest.com"


def check_inngest(settings: Settings, timeout: float) -> Check:
    if not inngest_configured(settings):
        return Check(
            "inngest", None, False, "no INNGEST_EVENT_KEY, INNGEST_SIGNING_KEY or INNGEST_DEV"
        )
    url = inngest_api_origin(settings) + "/health"
    started = time.perf_counter()
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as error:
        return Check("inngest", False, True, f"{url}: {describe(error)}")
    latency = _ms_since(started)
    # Any answer below 500 means the server is there (Inngest Cloud has no /health page);
    # 5xx means it is up but broken.
    if response.status_code >= 500:
        return Check("inngest", False, True, f"{url}: HTTP {response.status_code}", latency)
    return Check("inngest", True, True, f"{url}: HTTP {response.status_code}", latency)


def check_qstash(settings: Settings, timeout: float) -> tuple[Check, QStashAudit | None]:
    if settings.qstash_token is None:
        return Check("qstash", None, False, "no QSTASH_TOKEN"), None
    base = settings.qstash_url or "https://qstash.upstash.io"
    found = qstash_queues(settings, timeout)
    if found.error is not None:
        return Check("qstash", False, True, f"{base}: {found.error}"), None
    return Check("qstash", True, True, f"{base}: token accepted", found.latency_ms), found


def check_workers(settings: Settings, timeout: float) -> Check:
    """Workers that answer a broadcast within `timeout`, with their running tasks.

    Not required: jobs wait in the broker until a worker comes, and a deployment that
    publishes only to Inngest or QStash may run none.
    """
    from tasks.celery_app import create_app

    # An app of our own, from the settings read now (tasks.app read them at import).
    celery = create_app(settings)
    try:
        replies = celery.control.inspect(timeout=timeout).active() or {}
    except Exception as error:
        return Check("celery workers", False, False, describe(error))
    finally:
        celery.close()
    if not replies:
        return Check("celery workers", False, False, f"no worker answered within {timeout:g}s")
    busy = sum(len(tasks or []) for tasks in replies.values())
    names = ", ".join(sorted(replies))
    # No latency: a broadcast always waits out its whole timeout for late repliers.
    return Check(
        "celery workers", True, False, f"{len(replies)} answering ({names}); {busy} tasks running"
    )


def collect_status(
    settings: Settings, timeout: float = 2.0, worker_timeout: float = 1.0
) -> StatusReport:
    """Probe every service at once (each bounded by `timeout`), then ask the workers when
    the broker is up: a broadcast to a dead broker would wait for kombu's retries."""
    # Importing `tasks` creates the embedded broker's folders: do it before the probes so
    # the broker check never races it and sees the same state every run.
    import tasks  # noqa: F401

    with ThreadPoolExecutor(max_workers=4) as pool:
        database = pool.submit(check_database, settings, timeout)
        broker = pool.submit(check_broker, settings, timeout)
        inngest = pool.submit(check_inngest, settings, timeout)
        qstash = pool.submit(check_qstash, settings, timeout)
        database_check, actions = database.result()
        broker_check = broker.result()
        qstash_check, queues = qstash.result()
        checks = [database_check, broker_check, inngest.result(), qstash_check]
    if broker_check.ok:
        checks.append(check_workers(settings, worker_timeout))
    else:
        checks.append(
            Check("celery workers", False, False, f"not asked: {broker_check.name} is down")
        )
    return StatusReport(resolve_chain(settings), checks, actions, queues, datetime.now(UTC))


def every(seconds: float, produce: Callable[[], T]) -> Iterator[T]:
    """`produce()` now and then every `seconds` (measured from each start), forever."""
    while True:
        started = time.monotonic()
        yield produce()
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
