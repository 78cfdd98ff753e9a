"""The embedded broker: kombu's filesystem transport, safe when several processes share it.

`make dev` runs a web, a worker, beat and Flower on one folder at once. kombu's own
transport (5.7) loses there what a broker must not:
- an exchange's table of bound queues is rewritten in place, and a file that does not
  exist yet is truncated before it is locked: processes binding at the same moment (every
  one of them at start-up, Flower's inspect threads at its first request) lose each
  other's bindings or leave a table that is no longer JSON, after which every publish to
  that exchange fails and remote control answers nobody (seen as Flower never seeing
  the worker; dvc-task #73 saw the same);
- a message file is created, then written: a consumer may take it in between and read
  an empty message (kombu #1551), which is lost and breaks the consumer.
Here a table is changed under a lock of its own and replaced whole, and a message is
written under a hidden name and renamed into the queue, so a reader sees all of it or
nothing. A consumer claims a message by renaming it to a hidden name in the same folder
that names its process, so two consumers never both take it. A table left unreadable
(by kombu's own transport, say) is rebuilt by the next binding instead of failing every
publish for good.

kombu's transport also deletes a message as soon as it is taken, so one that a killed
worker held (prefetched, or running) was lost. Here a message taken for a consumer that
acknowledges keeps its claimed file until it is acknowledged, rejected or restored; a
consumer that finds a claimed file whose process is gone (its pid no longer runs, or
runs a process started at another time) gives the message back to its queue, marked
redelivered, as Redis does after its visibility timeout and RabbitMQ when the
connection drops.

The table's lock is a POSIX record lock (`lockf`), which a forked child does not
inherit (a `flock` taken while billiard forked a pool process would stay held for that
process's life), together with a lock for the threads of this process, which record
locks do not keep apart."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Empty
from time import monotonic, monotonic_ns
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

# Where Celery finds this transport (its `broker_transport` setting).
TRANSPORT_PATH = f"{__name__}:Transport"

log = logging.getLogger("jobbridge.embedded_broker")

# kombu's classes, typed only in part: overridden here with kombu's own signatures.
FilesystemChannel: Any = filesystem.Channel
FilesystemTransport: Any = filesystem.Transport
Table = list[filesystem.exchange_queue_t]

# How often a consumer looks for messages taken by processes that are gone, per queue.
ORPHANS_CHECK_SECONDS = 5.0
TAKEN_SUFFIX = ".taken"


class Channel(FilesystemChannel):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Queues consumed with acknowledgements: their messages keep a claimed file
        # until then (other consumers', remote control's replies, delete it at once).
        self._acknowledging: set[str] = set()
        self._orphans_checked: dict[str, float] = {}  # queue -> when

    def basic_consume(
        self, queue: str, no_ack: bool, callback: Any, consumer_tag: str, **kwargs: Any
    ) -> Any:
        if not no_ack:
            self._acknowledging.add(queue)
        return super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)

    def basic_cancel(self, consumer_tag: str) -> None:
        queue = self._tag_to_queue.get(consumer_tag)
        super().basic_cancel(consumer_tag)
        if queue not in self._tag_to_queue.values():
            self._acknowledging.discard(queue)

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        if not no_ack:
            self._acknowledging.add(queue)
        return super().basic_get(queue, no_ack, **kwargs)

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)
        self._forget(delivery_tag)

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue=requeue)  # requeued through _restore
        self._forget(delivery_tag)

    def _restore(self, message: Any) -> None:
        super()._restore(message)  # put back as a new message
        self._forget(message.delivery_tag)

    def _forget(self, delivery_tag: str) -> None:
        claimed = self.connection.taken.pop(delivery_tag, None)
        if claimed is not None:
            claimed.unlink(missing_ok=True)

    def get_table(self, exchange: str) -> Table:
        file = self._exchange_file(exchange)
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as error:
            raise ChannelError(f"Cannot read {file}: {error}") from error
        try:
            entries = loads(bytes_to_str(raw)) if raw else []
            return [filesystem.exchange_queue_t(*entry) for entry in entries]
        except (ValueError, TypeError) as error:
            raise UnreadableTable(
                f"{file} is not a table of bindings ({error}): the next process to bind "
                "a queue to it rebuilds it"
            ) from error

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        entry = _binding(routing_key, pattern, queue)
        with self._table(exchange) as queues:
            if entry not in queues:
                queues.insert(0, entry)

    def _delete(
        self, queue: str, exchange: str, routing_key: str, pattern: str, *args: Any, **kwargs: Any
    ) -> None:
        virtual.Channel._delete(self, queue)  # purges its messages
        entry = _binding(routing_key, pattern, queue)
        with self._table(exchange) as queues:
            if entry in queues:
                queues.remove(entry)

    @contextmanager
    def _table(self, exchange: str) -> Iterator[Table]:
        """The exchange's table, to change in place: read under the exchange's own lock
        and, if changed, replaced whole before the lock is let go."""
        file: Path = self._exchange_file(exchange)
        try:
            self.control_folder.mkdir(exist_ok=True)
            with _THREADS.lock, open(file.with_name(file.name + ".lock"), "ab") as lock:
                fcntl.lockf(lock, fcntl.LOCK_EX)
                try:
                    queues = self.get_table(exchange)
                    before: Table | None = list(queues)
                except UnreadableTable as error:
                    log.warning("%s", error)
                    queues, before = [], None  # rewritten whatever the change
                yield queues
                if queues != before:
                    _write_whole(file, str_to_bytes(dumps(queues)))
        except OSError as error:
            raise ChannelError(f"Cannot update {file}: {error}") from error

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        # kombu's name, but with the time in nanoseconds and zero-padded: names sort oldest
        # first (kombu's milliseconds ordered messages of the same millisecond by their
        # uuid, and a longer number before a shorter one).
        name = f"{monotonic_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        try:
            _write_whole(Path(self.data_folder_out) / name, str_to_bytes(dumps(payload)))
        except OSError as error:
            raise ChannelError(f"Cannot add {name!r} to the queue: {error}") from error

    def _get(self, queue: str) -> Any:
        wanted = f"{queue}.msg"
        inbox = Path(self.data_folder_in)
        names = _listing(inbox)
        if self._give_back_orphans(queue, inbox, names):
            names = _listing(inbox)
        for name in names:
            if name.partition(".")[2] != wanted:
                continue
            # A hidden name in the same folder: the rename is atomic, needs no other
            # folder, and no listing of the queue sees the message again.
            claimed = _claimed_path(inbox, name)
            try:
                os.rename(inbox / name, claimed)
            except FileNotFoundError:
                if (inbox / name).exists():
                    raise ChannelError(f"Cannot take {name} from {inbox}") from None
                continue  # another consumer took it first
            except OSError as error:
                raise ChannelError(f"Cannot take {name} from {inbox}: {error}") from error
            try:
                message = loads(bytes_to_str(claimed.read_bytes()))
            except OSError as error:
                raise ChannelError(f"Cannot read {claimed}: {error}") from error
            except ValueError as error:
                _set_aside(claimed, name, error)
                continue
            tag = message.get("properties", {}).get("delivery_tag")
            if queue in self._acknowledging and tag is not None:
                self.connection.taken[tag] = claimed
            else:
                claimed.unlink(missing_ok=True)
            return message
        raise Empty()

    def _give_back_orphans(self, queue: str, inbox: Path, names: list[str]) -> bool:
        """Put back the messages of `queue` whose claiming process is gone (looked for
        at most every ORPHANS_CHECK_SECONDS): True when there were any."""
        now = monotonic()
        if now < self._orphans_checked.get(queue, 0.0):
            return False
        self._orphans_checked[queue] = now + ORPHANS_CHECK_SECONDS
        wanted, given_back = f"{queue}.msg", False
        for name in names:
            taken = _parse_claimed(name)
            if taken is None or taken[0].partition(".")[2] != wanted or _running(taken[1]):
                continue
            _give_back(inbox, name, taken[0], taken[1])
            given_back = True
        return given_back


def _listing(inbox: Path) -> list[str]:
    try:
        return sorted(os.listdir(inbox))
    except OSError as error:
        raise ChannelError(f"Cannot list {inbox}: {error}") from error


def _give_back(inbox: Path, claimed_name: str, name: str, owner: str) -> None:
    """The message back in its queue under its own name (so in its place), marked
    redelivered. Claimed by this process first, so that only one consumer gives it back,
    and renamed back whole, so that it is never in the queue and claimed at once."""
    mine = _claimed_path(inbox, name)
    try:
        os.rename(inbox / claimed_name, mine)
    except FileNotFoundError:
        return  # another consumer is giving it back
    except OSError as error:
        raise ChannelError(f"Cannot take back {claimed_name} in {inbox}: {error}") from error
    try:
        message = loads(bytes_to_str(mine.read_bytes()))
    except ValueError as error:
        _set_aside(mine, name, error)
        return
    except OSError as error:
        raise ChannelError(f"Cannot give back {name} in {inbox}: {error}") from error
    _mark_redelivered(message)
    try:
        _write_whole(mine, str_to_bytes(dumps(message)))
        os.rename(mine, inbox / name)
    except OSError as error:
        raise ChannelError(f"Cannot give back {name} in {inbox}: {error}") from error
    log.warning("message %s: its process (%s) is gone; back in its queue", name, owner)


def _set_aside(claimed: Path, name: str, error: ValueError) -> None:
    """A message that is not JSON: kept beside the queue, out of every consumer's way."""
    claimed.rename(claimed.with_name(f".{name}.unreadable"))
    log.error("message %s is not JSON (%s): set aside as .%s.unreadable", name, error, name)


def _mark_redelivered(message: dict[str, Any]) -> None:
    """Where Celery reads it (`delivery_info`), as kombu's Redis transport marks a
    message it restores."""
    message["redelivered"] = True
    properties = message.setdefault("properties", {})
    properties.setdefault("delivery_info", {})["redelivered"] = True
    headers = message.get("headers")
    if isinstance(headers, dict):
        headers["redelivered"] = True


def _claimed_path(inbox: Path, name: str) -> Path:
    return inbox / f".{name}.{_this_process()}.{uuid.uuid4().hex[:8]}{TAKEN_SUFFIX}"


def _parse_claimed(name: str) -> tuple[str, str] | None:
    """(the message's name, its claiming process) of a claimed file's name, else None."""
    if not (name.startswith(".") and name.endswith(TAKEN_SUFFIX)):
        return None
    parts = name[1 : -len(TAKEN_SUFFIX)].rsplit(".", 2)
    if len(parts) != 3 or not parts[0].endswith(".msg"):
        return None
    return parts[0], parts[1]


def _pid_namespace() -> str:
    """The number of this process's pid namespace (Linux), "0" elsewhere: a pid means
    something only in its namespace, and a container has its own."""
    try:
        link = os.readlink("/proc/self/ns/pid")  # e.g. "pid:[4026531836]"
    except OSError:
        return "0"
    return "".join(char for char in link if char.isdigit()) or "0"


_NAMESPACE = _pid_namespace()


def _this_process() -> str:
    """`<pid namespace>-<pid>-<start time>`: the start time tells a pid used again by a
    later process from the one that claimed."""
    pid, started = os.getpid(), "0"  # "0": only whether the pid runs can be told
    try:
        stat = Path("/proc/self/stat").read_text()
    except OSError:
        pass
    else:
        if stat.split(" ", 1)[0] == str(pid):  # a /proc of this pid namespace
            started = _start_time(stat)
    return f"{_NAMESPACE}-{pid}-{started}"


def _start_time(stat: str) -> str:
    # /proc/<pid>/stat: the fields after the command's name (which may hold spaces and
    # parentheses) start at the state, field 3; the start time is field 22.
    return stat[stat.rindex(")") + 2 :].split()[19]


def _running(owner: str) -> bool:
    """Whether the process that claimed may still run: not, only when it was of this
    pid namespace and its pid now runs no process, or one started at another time."""
    try:
        namespace, pid_text, started = owner.split("-")
        pid = int(pid_text)
    except ValueError:
        return True  # not a name this transport wrote: left alone
    if namespace != _NAMESPACE:
        return True  # another container's, say: cannot tell
    if started != "0":
        try:
            return _start_time(Path(f"/proc/{pid}/stat").read_text()) == started
        except (OSError, ValueError, IndexError):
            pass  # gone, or hidden from this user (hidepid): the kernel says which
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _binding(routing_key: str | None, pattern: str | None, queue: str | None) -> Any:
    """A table's entry as kombu writes it: absent fields as empty strings."""
    return filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")


def _write_whole(file: Path, content: bytes) -> None:
    """Write under a hidden name, then rename: readers see the old file or all of the new."""
    hidden = file.with_name(f".{file.name}.{uuid.uuid4().hex}.tmp")
    try:
        hidden.write_bytes(content)
        os.replace(hidden, file)
    except BaseException:
        hidden.unlink(missing_ok=True)
        raise


class UnreadableTable(ChannelError):
    """An exchange's table of bindings that is not JSON."""


class _ThreadsOfThisProcess:
    """The lock the threads of this process hold around a table's change (a record lock
    is the process's, so it does not keep them apart). A child forked while one of them
    held it starts with a free one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self.lock = threading.Lock()


_THREADS = _ThreadsOfThisProcess()


class Transport(FilesystemTransport):  # type: ignore[misc]
    Channel = Channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Delivery tag -> its claimed file, for every channel of the connection: kombu
        # may ack or reject a message through another channel than the one that took it.
        self.taken: dict[str, Path] = {}
