"""The embedded broker keeps a message until it is acknowledged: one that a killed
worker held comes back to its queue, marked redelivered, as on Redis and RabbitMQ, and
one that was acknowledged, rejected or restored leaves nothing behind."""

from __future__ import annotations

import multiprocessing
import os
import uuid
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection

from bridge.celery.embedded_broker import TRANSPORT_PATH, _this_process
from tests.support.embedded_folders import make_folders

fork = multiprocessing.get_context("fork")


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, str]:
    return make_folders(tmp_path)


@pytest.fixture
def name() -> str:
    return f"jobs-{uuid.uuid4().hex[:8]}"  # exchanges are also kept per process


def queue(folders: dict[str, str], name: str, *, no_ack: bool = False) -> Any:
    """A queue on a connection of its own (a fresh channel, as a new worker has)."""
    connection = Connection("filesystem://", transport=TRANSPORT_PATH, transport_options=folders)
    return connection.SimpleQueue(name, no_ack=no_ack)


def files(folders: dict[str, str]) -> list[str]:
    return sorted(os.listdir(folders["data_folder_in"]))


def take_then_exit(folders: dict[str, str], name: str, taken: Any, go: Any) -> None:
    """Take a message without acknowledging it, say so, and exit when told (os._exit:
    nothing restores it, as when a worker is killed)."""
    message = queue(folders, name).get(block=False)
    taken.put(message.payload)
    taken.close()
    taken.join_thread()  # sent before the exit, which flushes nothing
    go.wait(30)
    os._exit(0)


def test_a_message_whose_taker_died_unacknowledged_comes_back_redelivered(
    folders: dict[str, str], name: str
) -> None:
    queue(folders, name).put({"n": 1})
    taken, go = fork.Queue(), fork.Event()
    go.set()
    taker = fork.Process(target=take_then_exit, args=(folders, name, taken, go))
    taker.start()
    assert taken.get(timeout=30) == {"n": 1}
    taker.join(30)
    assert taker.exitcode == 0

    again = queue(folders, name).get(block=False)

    assert again.payload == {"n": 1}
    assert again.delivery_info["redelivered"] is True


def test_a_message_held_by_a_live_process_is_not_given_back(
    folders: dict[str, str], name: str
) -> None:
    queue(folders, name).put({"n": 1})
    taken, go = fork.Queue(), fork.Event()
    taker = fork.Process(target=take_then_exit, args=(folders, name, taken, go))
    taker.start()
    try:
        assert taken.get(timeout=30) == {"n": 1}
        with pytest.raises(Empty):
            queue(folders, name).get(block=False)
    finally:
        go.set()
        taker.join(30)


def test_an_acknowledged_message_leaves_nothing_behind(folders: dict[str, str], name: str) -> None:
    jobs = queue(folders, name)
    jobs.put({"n": 1})

    jobs.get(block=False).ack()

    assert files(folders) == []


def test_a_message_taken_without_acknowledgement_is_deleted_at_once(
    folders: dict[str, str], name: str
) -> None:
    queue(folders, name).put({"n": 1})

    assert queue(folders, name, no_ack=True).get(block=False).payload == {"n": 1}

    assert files(folders) == []


def test_a_rejected_message_is_back_once_and_its_claim_is_gone(
    folders: dict[str, str], name: str
) -> None:
    jobs = queue(folders, name)
    jobs.put({"n": 1})

    jobs.get(block=False).reject(requeue=True)

    assert [file.endswith(f".{name}.msg") for file in files(folders)] == [True]
    assert queue(folders, name).get(block=False).payload == {"n": 1}


def test_a_message_restored_when_its_channel_closes_is_back_once(
    folders: dict[str, str], name: str
) -> None:
    jobs = queue(folders, name)
    jobs.put({"n": 1})
    jobs.get(block=False)

    jobs.channel.close()  # a worker's warm shutdown restores what it did not run

    assert [file.endswith(f".{name}.msg") for file in files(folders)] == [True]


def claimed_by(folders: dict[str, str], name: str, owner: str) -> str:
    """Put a message, then rename it as a consumer named `owner` would claim it."""
    queue(folders, name).put({"n": 1})
    (message,) = files(folders)
    claimed = f".{message}.{owner}.{uuid.uuid4().hex}.taken"
    inbox = Path(folders["data_folder_in"])
    (inbox / message).rename(inbox / claimed)
    return claimed


def test_a_claim_by_an_earlier_process_under_the_same_pid_is_given_back(
    folders: dict[str, str], name: str
) -> None:
    namespace, pid, _ = _this_process().split("-")
    claimed_by(folders, name, f"{namespace}-{pid}-1")  # started at another time

    assert queue(folders, name).get(block=False).payload == {"n": 1}


def test_a_claim_from_another_pid_namespace_is_left_alone(
    folders: dict[str, str], name: str
) -> None:
    claimed = claimed_by(folders, name, f"1-{os.getpid()}-1")  # a container's, say

    with pytest.raises(Empty):
        queue(folders, name).get(block=False)
    assert files(folders) == [claimed]


def test_a_message_that_is_not_json_is_set_aside_and_the_next_one_taken(
    folders: dict[str, str], name: str
) -> None:
    jobs = queue(folders, name)
    inbox = Path(folders["data_folder_in"])
    (inbox / f"{0:020d}_broken.{name}.msg").write_text("{not json")
    jobs.put({"n": 2})

    assert jobs.get(block=False).payload == {"n": 2}
    assert f".{0:020d}_broken.{name}.msg.unreadable" in files(folders)


def test_a_message_acknowledged_through_another_channel_leaves_nothing_behind(
    folders: dict[str, str], name: str
) -> None:
    jobs = queue(folders, name)
    jobs.put({"n": 1})
    message = jobs.get(block=False)

    other = jobs.channel.connection.client.channel()  # same connection, another channel
    other.basic_ack(message.delivery_tag)

    assert files(folders) == []
