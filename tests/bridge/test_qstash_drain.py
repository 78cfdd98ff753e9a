"""bridge.qstash.drain on its own: destination URLs mapped to routes, the latest state of
a message, and a replay's order (validate, publish, only then delete). The SDK client
talks to QStash's console API as the test plays it (tests/support/qstash_console_double.py)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from qstash import QStash

from bridge.errors import PublishError
from bridge.outcome import Delivery, Result, done
from bridge.payload import Payload
from bridge.qstash import drain
from bridge.receipt import Receipt
from bridge.registry import JobSpec, Registry
from config import Provider
from tests.support import env as test_env
from tests.support.qstash_console_double import QStashConsole, now_ms

BASE = "https://app.example.test/inbox"


class Thing(Payload):
    thing_id: str


def _body(payload: Thing, delivery: Delivery) -> Result:
    return done()


registry = Registry(event_prefix="demo/", alias_suffixes=("/simple",))
THING = registry.job(
    event="demo/thing.do", route="/api/thing/do", payload=Thing, legacy_routes=("/api/thing",)
)(_body)
ROUTES = drain.Routes(registry, BASE)


@pytest.fixture
def qstash(router: Any) -> tuple[QStash, QStashConsole]:
    client = QStash(test_env.QSTASH_TOKEN, retry=False, base_url=test_env.QSTASH_API)
    return client, QStashConsole(router)


class Published:
    """A provider chain that takes everything (or refuses, with `refuse`)."""

    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self.refuse = refuse

    def __call__(self, spec: JobSpec[Any], payload: Payload, dedup_id: str) -> Receipt:
        if self.refuse:
            raise PublishError(Provider.INNGEST, "event API refused or unreachable")
        self.calls.append((spec.event, payload.to_wire(), dedup_id))
        return Receipt(Provider.INNGEST, f"evt-{len(self.calls)}")


@pytest.mark.parametrize(
    ("url", "label"),
    [
        (f"{BASE}/api/thing/do", "/api/thing/do (thing.do)"),
        (f"{BASE}/api/thing/simple", "/api/thing/simple (thing.do, alias)"),
        ("HTTPS://App.Example.Test/inbox/api/thing/do?x=1", "/api/thing/do (thing.do)"),
    ],
)
def test_a_url_under_webhook_url_maps_to_its_job(url: str, label: str) -> None:
    assert ROUTES.destination(url).label == label


@pytest.mark.parametrize(
    "url",
    [
        "https://app.example.test/api/thing/do",  # not under WEBHOOK_URL's path
        "http://app.example.test/inbox/api/thing/do",  # another scheme
        "https://elsewhere.test/inbox/api/thing/do",  # another host
        f"{BASE}/api/thing/undone",  # a path no job has
    ],
)
def test_a_url_outside_the_apps_routes_is_other(url: str) -> None:
    assert ROUTES.destination(url).label == f"other: {url}"


def test_without_webhook_url_every_url_is_other() -> None:
    assert drain.Routes(registry, None).destination(f"{BASE}/api/thing/do").job is None


def test_of_two_log_entries_at_the_same_time_the_final_state_counts(
    qstash: tuple[QStash, QStashConsole],
) -> None:
    client, console = qstash
    at = now_ms() - 1000
    console.log("msg_1", "DELIVERED", f"{BASE}/api/thing/do", at=at)
    console.log("msg_1", "ACTIVE", f"{BASE}/api/thing/do", at=at)

    counts = drain.count_messages(
        client, ROUTES, since=datetime.now(UTC) - timedelta(hours=1), max_pages=5
    )

    assert counts.by_state == {"DELIVERED": 1} and counts.pending == 0


def test_reading_the_logs_prints_nothing_and_leaves_stdout_alone(
    qstash: tuple[QStash, QStashConsole], capsys: pytest.CaptureFixture[str]
) -> None:
    # The SDK's own log.list() prints each answer (message bodies included); in the web
    # server a swapped sys.stdout would also swallow other threads' output.
    client, console = qstash
    console.log("msg_1", "CREATED", f"{BASE}/api/thing/do", at=now_ms() - 1000)
    stdout = sys.stdout

    drain.count_messages(client, ROUTES, since=datetime.now(UTC) - timedelta(hours=1), max_pages=5)

    assert capsys.readouterr().out == ""
    assert sys.stdout is stdout


def test_a_lowercase_dedup_header_is_the_replays_dedup_id(
    qstash: tuple[QStash, QStashConsole],
) -> None:
    client, console = qstash
    headers = {"upstash-deduplication-id": ["thing-1"]}
    console.dead_letter("dlq_1", f"{BASE}/api/thing/do", {"thingId": "t1"}, headers=headers)
    published = Published()

    [(_, letter)] = drain.get_dead_letters(client, ROUTES, ["dlq_1"])
    assert letter is not None
    drain.replay(client, letter, published, test_env.QSTASH_API)

    assert published.calls == [("demo/thing.do", {"thingId": "t1"}, "thing-1")]


def test_a_refused_publish_leaves_the_entry_undeleted(
    qstash: tuple[QStash, QStashConsole],
) -> None:
    client, console = qstash
    console.dead_letter("dlq_1", f"{BASE}/api/thing/do", {"thingId": "t1"})
    [(_, letter)] = drain.get_dead_letters(client, ROUTES, ["dlq_1"])
    assert letter is not None

    outcome = drain.replay(client, letter, Published(refuse=True), test_env.QSTASH_API)

    assert not outcome.replayed and console.deleted == [] and "dlq_1" in console.dead
    assert "publish failed: inngest: event API refused" in outcome.line()


def test_a_body_that_is_not_json_is_left_with_the_reason(
    qstash: tuple[QStash, QStashConsole],
) -> None:
    client, console = qstash
    console.dead_letter("dlq_1", f"{BASE}/api/thing/do", "thingId=t1")
    [(_, letter)] = drain.get_dead_letters(client, ROUTES, ["dlq_1"])
    assert letter is not None
    published = Published()

    outcome = drain.replay(client, letter, published, test_env.QSTASH_API)

    assert published.calls == [] and "its body is not JSON" in outcome.line()


def test_a_replay_whose_delete_fails_says_it_is_still_in_the_dlq(
    qstash: tuple[QStash, QStashConsole],
) -> None:
    client, console = qstash
    console.dead_letter("dlq_1", f"{BASE}/api/thing/do", {"thingId": "t1"})
    console.fail_deletes = True
    [(_, letter)] = drain.get_dead_letters(client, ROUTES, ["dlq_1"])
    assert letter is not None

    outcome = drain.replay(client, letter, Published(), test_env.QSTASH_API)

    assert outcome.replayed and "dlq_1" in console.dead
    assert outcome.line().startswith("dlq_1 msg_dlq_1 /api/thing/do (thing.do): replayed to")
    assert "; still in the DLQ: QStash at https://qstash.test failed:" in outcome.line()
