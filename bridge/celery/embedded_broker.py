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
nothing. A consumer claims a message by renaming it to a hidden name in the same folder,
so two consumers never both take it. A table left unreadable (by kombu's own transport,
say) is rebuilt by the next binding instead of failing every publish for good.

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
from time import monotonic_ns
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


class Channel(FilesystemChannel):  # type: ignore[misc]
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
        try:
            names = sorted(os.listdir(inbox))
        except OSError as error:
            raise ChannelError(f"Cannot list {inbox}: {error}") from error
        for name in names:
            if name.partition(".")[2] != wanted:
                continue
            # A hidden name in the same folder: the rename is atomic, needs no other
            # folder, and no listing of the queue sees the message again.
            claimed = inbox / f".{name}.{uuid.uuid4().hex}.taken"
            try:
                os.rename(inbox / name, claimed)
            except FileNotFoundError:
                if (inbox / name).exists():
                    raise ChannelError(f"Cannot take {name} from {inbox}") from None
                continue  # another consumer took it first
            except OSError as error:
                raise ChannelError(f"Cannot take {name} from {inbox}: {error}") from error
            try:
                payload = claimed.read_bytes()
            except OSError as error:
                raise ChannelError(f"Cannot read {claimed}: {error}") from error
            claimed.unlink(missing_ok=True)
            return loads(bytes_to_str(payload))
        raise Empty()


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
