"""QStash's logs as the `/status` page reads them (bridge.ops.qstash_holdings.LogCensus):
longer than one collection reads, they are read on over the next ones, and the verdict
says "no" until one pass has reached their end, then what the whole of them says.

QStash's console API is played by tests/support/qstash_console_double.py. A census of
two-entry pages, two pages a collection, stands for a real one of 1,000-entry pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bridge.apps import load_app
from bridge.ops.qstash_holdings import LogCensus
from bridge.ops.qstash_verdict import Verdict
from bridge.ops.status_board import collect_board
from tests.support import env
from tests.support.qstash_console_double import QStashConsole, now_ms

Configure = Callable[..., Any]
EXECUTE = f"{env.WEBHOOK_URL}/api/scheduled-actions/execute"
HOUR_MS = 3_600_000


@pytest.fixture
def qstash(router: Any, configure: Configure) -> QStashConsole:
    """Inngest publishes and answers; QStash still configured, its console played here."""
    configure(**env.QSTASH_ENV, **env.INNGEST_ENV)
    router.get(f"{env.INNGEST_API}/health").respond(200, json={"status": 200})
    return QStashConsole(router)


def small_census() -> LogCensus:
    return LogCensus(page_size=2, max_pages=2, budget=60.0)


def verdict(census: LogCensus | None = None) -> Verdict:
    from config import get_settings

    return collect_board(get_settings(), load_app("tasks"), census=census).verdict


def delivered(console: QStashConsole, count: int, *, hours_ago: int = 1) -> None:
    """`count` messages of the app, each created and delivered a minute apart."""
    start = now_ms() - hours_ago * HOUR_MS
    for n in range(count):
        console.log(f"msg_{n}", "CREATED", EXECUTE, at=start - n * 60_000 - 1)
        console.log(f"msg_{n}", "DELIVERED", EXECUTE, at=start - n * 60_000)


def test_more_pages_than_the_old_two_give_yes_in_one_collection(qstash: QStashConsole) -> None:
    delivered(qstash, 1_250)  # 2,500 entries: three pages of 1,000

    found = verdict()

    assert found.answer == "yes", found.reasons
    assert len(qstash.log_queries) == 3


def test_logs_longer_than_a_collection_reads_say_no_while_read_in_part(
    qstash: QStashConsole,
) -> None:
    delivered(qstash, 4)  # 8 entries: four pages of two

    found = verdict(small_census())

    assert found.answer == "no"
    assert found.reasons[-1].startswith("QStash's logs were not read to the end yet (read back to")


def test_logs_read_on_over_collections_give_yes_once_read_to_the_end(
    qstash: QStashConsole,
) -> None:
    delivered(qstash, 4)
    census = small_census()

    answers = [verdict(census).answer for _ in range(3)]

    # Pages 1-2, then 3-4 (the end of a pass begun earlier), then one newer than the
    # newest entry read: a pass begun and ended in the same collection.
    assert answers == ["no", "no", "yes"]


def test_each_collection_asks_for_a_bounded_number_of_pages(qstash: QStashConsole) -> None:
    delivered(qstash, 20)
    census = small_census()

    asked = []
    for _ in range(4):
        before = len(qstash.log_queries)
        verdict(census)
        asked.append(len(qstash.log_queries) - before)

    assert asked == [2, 2, 2, 2]


def test_a_message_held_deep_in_the_logs_is_found_by_a_later_collection(
    qstash: QStashConsole,
) -> None:
    delivered(qstash, 4)
    qstash.log("msg_waiting", "CREATED", EXECUTE, at=now_ms() - 5 * HOUR_MS)  # the oldest
    census = small_census()

    reasons = [verdict(census).reasons for _ in range(3)]

    assert reasons[-1] == ("QStash still holds 1 message for this app (CREATED 1)",)
    assert all("still holds" not in reason for reason in reasons[0])


def test_a_delivery_logged_after_a_complete_reading_is_read_by_the_next(
    qstash: QStashConsole,
) -> None:
    qstash.log("msg_late", "CREATED", EXECUTE, at=now_ms() - HOUR_MS)
    census = small_census()
    assert verdict(census).answer == "no"  # read to the end: the message is still held

    qstash.log("msg_late", "ACTIVE", EXECUTE)
    qstash.log("msg_late", "DELIVERED", EXECUTE)
    found = verdict(census)

    assert found.answer == "yes", found.reasons


def test_a_failed_read_says_qstash_could_not_be_asked_and_the_next_reads_again(
    qstash: QStashConsole,
) -> None:
    delivered(qstash, 1)
    census = small_census()
    qstash.down = True
    assert verdict(census).reasons[-1].startswith("QStash could not be asked: QStash at")

    qstash.down = False

    assert verdict(census).answer == "yes"
