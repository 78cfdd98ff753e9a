"""The embedded broker shared by several processes at once, as `make dev` shares it:
bindings made at the same moment all stay, a message is read whole or not at all, and
two consumers never take the same message. (kombu's own filesystem transport fails
each of these: see bridge/celery/embedded_broker.py.)"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Exchange, Queue
from kombu.exceptions import ChannelError

from tests.support.embedded_folders import channel, make_folders

PROCESSES = 4
fork = multiprocessing.get_context("fork")


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, str]:
    return make_folders(tmp_path)


def in_processes(target: Callable[..., None], *args: Any) -> None:
    """Run `target(index, *args)` in PROCESSES forked processes; fail if any fails."""
    processes = [fork.Process(target=target, args=(i, *args)) for i in range(PROCESSES)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0] * PROCESSES


def bind_one(index: int, folders: dict[str, str], exchange: str, start: Barrier) -> None:
    queue = Queue(f"queue-{index}", Exchange(exchange, type="direct"), routing_key=f"key-{index}")
    bound = queue(channel(folders))
    start.wait(timeout=30)
    bound.declare()


def test_processes_binding_to_a_new_exchange_at_once_keep_every_binding(
    folders: dict[str, str],
) -> None:
    for attempt in range(10):
        exchange = f"replies-{attempt}"
        in_processes(bind_one, folders, exchange, fork.Barrier(PROCESSES))
        table = Path(folders["control_folder"], f"{exchange}.exchange").read_text("utf-8")
        assert sorted(queue for _, _, queue in json.loads(table)) == [
            f"queue-{i}" for i in range(PROCESSES)
        ]


def test_removing_a_binding_keeps_the_others(folders: dict[str, str]) -> None:
    bound = channel(folders)
    for index in range(3):
        Queue(f"queue-{index}", Exchange("jobs"), routing_key=f"key-{index}")(bound).declare()
    bound.queue_delete("queue-1")
    queues = [entry.queue for entry in bound.get_table("jobs")]
    assert sorted(queues) == ["queue-0", "queue-2"]


PAD = "x" * 200_000  # a message large enough to take a while to write
MESSAGES = 300


def write_messages(folders: dict[str, str]) -> None:
    sending = channel(folders)
    for number in range(MESSAGES):
        sending._put("jobs", {"number": number, "pad": PAD})


def test_a_consumer_reads_every_message_whole_while_they_are_being_written(
    folders: dict[str, str],
) -> None:
    writer = fork.Process(target=write_messages, args=(folders,))
    writer.start()
    receiving = channel(folders)
    numbers: list[int] = []
    while len(numbers) < MESSAGES and (writer.is_alive() or receiving._size("jobs")):
        try:
            message = receiving._get("jobs")
        except Empty:
            continue
        assert message["pad"] == PAD
        numbers.append(message["number"])
    writer.join(timeout=60)
    assert numbers == list(range(MESSAGES))


def take_all(index: int, folders: dict[str, str], taken: Any) -> None:
    receiving, mine = channel(folders), []
    while True:
        try:
            mine.append(receiving._get("jobs")["number"])
        except Empty:
            break
    taken.put(mine)


def test_consumers_competing_for_a_queue_never_take_the_same_message(
    folders: dict[str, str],
) -> None:
    sending = channel(folders)
    for number in range(1_000):
        sending._put("jobs", {"number": number})
    taken = fork.Queue()
    in_processes(take_all, folders, taken)
    every = [number for _ in range(PROCESSES) for number in taken.get(timeout=10)]
    assert sorted(every) == list(range(1_000))


def test_a_table_left_unreadable_fails_a_publish_clearly_and_the_next_binding_rebuilds_it(
    folders: dict[str, str],
) -> None:
    # As kombu's own transport leaves one after a race: two tables written over each other.
    table = Path(folders["control_folder"], "unreadable.exchange")
    table.write_text('[["old", "", "old"]]", "", "x"]]', "utf-8")
    bound = channel(folders)
    with pytest.raises(ChannelError, match=r"unreadable\.exchange is not a table of bindings"):
        bound.get_table("unreadable")

    Queue("rebuilt", Exchange("unreadable"), routing_key="key")(bound).declare()

    assert [entry.queue for entry in bound.get_table("unreadable")] == ["rebuilt"]


def bind_in_a_child(folders: dict[str, str], result: Any) -> None:
    Queue("child", Exchange("forked"), routing_key="child")(channel(folders)).declare()
    result.put("bound")


def test_a_process_forked_while_a_table_is_being_changed_can_still_bind(
    folders: dict[str, str],
) -> None:
    bound, result = channel(folders), fork.Queue()
    with bound._table("forked"):  # another thread of this process changing the table
        child = fork.Process(target=bind_in_a_child, args=(folders, result))
        child.start()
    child.join(timeout=30)
    assert (child.exitcode, result.get(timeout=5)) == (0, "bound")
    assert [entry.queue for entry in bound.get_table("forked")] == ["child"]


def test_a_consumer_whose_queue_folder_is_gone_fails_clearly(folders: dict[str, str]) -> None:
    receiving = channel(folders)
    Path(folders["data_folder_in"]).rmdir()
    with pytest.raises(ChannelError, match="Cannot list"):
        receiving._get("jobs")


def test_messages_put_within_one_millisecond_are_taken_in_order(
    folders: dict[str, str],
) -> None:
    bound = channel(folders)
    for number in range(200):  # small: many of them share a millisecond
        bound._put("jobs", {"number": number})

    taken = [bound._get("jobs")["number"] for _ in range(200)]

    assert taken == list(range(200))
