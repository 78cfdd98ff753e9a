"""The IMAP adapter's folders as listings walk them (`thread_pages.FolderView`): a
folder's messages newest first and in threads (`imap_threads`), kept in this process
between calls and checked with one STATUS (UIDVALIDITY, UIDNEXT, MESSAGES) per call.

With SORT and THREAD on the server, the order is `UID SORT (REVERSE DATE)` and the
threads `UID THREAD`: two commands whatever the folder's size, asked again when mail
arrives. A message's header fields (its date, ids and thread root; they never change
for a UID) are fetched when a page first reaches it, and kept. Without them, every
message's header fields are fetched once, the order and threads computed here, and then
only arrivals are fetched. Expunged messages are dropped from either. Flags (read,
keywords) are never kept: a page fetches those of the messages it filters on.

Kept per process in `_states`, least recently used dropped first past _MAX_MESSAGES
messages over all folders; one lock a folder, held for a whole listing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from imapclient import IMAPClient

from tasks.mail.imap_messages import SEEN, fetch_headers, keywords
from tasks.mail.imap_threads import link_components, message_ids, thread_uids
from tasks.mail.maildir_cursor import micros

Threading = Literal["REFS", "REFERENCES", "headers"]
_MAX_MESSAGES = 500_000
_FETCH_CHUNK = 1_000


class Gone(LookupError):
    """A message the folder listed is gone (expunged since): read the folder again."""


@dataclass(frozen=True)
class Facts:
    """What a listing keeps of one message: none of it changes for a UID."""

    stamp: int  # its date, in microseconds
    port_id: str
    root: str  # its own thread root
    ids: tuple[str, ...]  # its own id first, then the ids it links to


class FolderState:
    def __init__(self, uidvalidity: int, threading_by: Threading) -> None:
        self.uidvalidity, self.threading = uidvalidity, threading_by
        self.uidnext = self.messages = -1
        self.order: list[int] = []  # UIDs, newest first
        self.position: dict[int, int] = {}
        self.group_of: dict[int, int] = {}
        self.groups: dict[int, list[int]] = {}
        self.thread_of: dict[int, str] = {}  # group -> thread id, once settled
        self.group_by_thread: dict[str, int] = {}
        self.whole: set[int] = set()  # groups known to be linked (not merged by subject)
        self.facts: dict[int, Facts] = {}
        self.lock = threading.Lock()
        self._numbers = 0

    def new_group(self, uids: list[int]) -> int:
        self._numbers += 1
        self.groups[self._numbers] = uids
        for uid in uids:
            self.group_of[uid] = self._numbers
        return self._numbers

    def set_order(self, order: list[int]) -> None:
        self.order = order
        self.position = {uid: number for number, uid in enumerate(order)}

    def regroup(self, groups: Iterable[list[int]], *, whole: bool) -> None:
        self.groups, self.group_of, self.thread_of, self.group_by_thread = {}, {}, {}, {}
        self.whole = set()
        for uids in groups:
            number = self.new_group(uids)
            if whole or len(uids) == 1:
                self.whole.add(number)

    def unsettle_all(self) -> None:
        self.thread_of, self.group_by_thread = {}, {}

    def unsettle(self, group: int) -> None:
        thread = self.thread_of.pop(group, None)
        if thread is not None and self.group_by_thread.get(thread) == group:
            del self.group_by_thread[thread]


_states: OrderedDict[tuple[object, ...], FolderState] = OrderedDict()
_states_lock = threading.Lock()


@contextmanager
def folder_view(
    client: IMAPClient,
    account: tuple[object, ...],
    folder: str,
    threading_by: Threading,
    select: Callable[[], object],
    *,
    selected: bool,
) -> Iterator[ImapFolderView]:
    """The folder as it is now, locked for this listing. `selected`: the folder is the one
    this connection has selected, whose STATUS a server may answer from the session's own
    view (Dovecot does; RFC 3501 says not to ask it): a NOOP brings that view up to date."""
    if selected:
        client.noop()
    status = client.folder_status(folder, [b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES"])
    validity, uidnext, count = (
        int(status[name]) for name in (b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES")
    )
    key = (*account, folder, threading_by)
    with _states_lock:
        state = _states.get(key)
        if state is None or state.uidvalidity != validity:
            state = _states[key] = FolderState(validity, threading_by)
        _states.move_to_end(key)
        _evict(keep=state)
    with state.lock:
        if (state.uidnext, state.messages) != (uidnext, count):
            select()
            if state.uidnext != uidnext:
                _read_order(state, client, folder)
            else:
                _drop_gone(state, set(client.search(["ALL"])))
            state.uidnext, state.messages = uidnext, count
        try:
            yield ImapFolderView(state, client, folder, select)
        except Gone:
            state.messages = -1  # the next call looks for what else is gone
            raise


def forget_headers() -> None:
    """Forget the header fields fetched so far; the folders' order and threads stay, so
    the next page reads its messages as a page reaching them first does (benchmarks)."""
    with _states_lock:
        states = list(_states.values())
    for state in states:
        with state.lock:
            state.facts.clear()
            state.unsettle_all()


def _evict(keep: FolderState) -> None:
    total = sum(len(state.order) for state in _states.values())
    for key in list(_states):
        if total <= _MAX_MESSAGES:
            break
        if _states[key] is not keep:
            total -= len(_states.pop(key).order)


def _read_order(state: FolderState, client: IMAPClient, folder: str) -> None:
    """The folder's order and threads, from the server or from every message's headers."""
    if state.threading == "headers":
        uids = client.search(["ALL"])
        _drop_facts(state, set(uids))
        missing = [uid for uid in uids if uid not in state.facts]
        for start in range(0, len(missing), _FETCH_CHUNK):
            _fetch_facts(state, client, folder, missing[start : start + _FETCH_CHUNK])
        present = [uid for uid in uids if uid in state.facts]
        state.set_order(sorted(present, key=lambda uid: (-state.facts[uid].stamp, uid)))
        ids = {uid: state.facts[uid].ids for uid in state.order}
        state.regroup(link_components(ids), whole=True)
        return
    order = client.sort(["REVERSE DATE"])
    listed = set(order)
    _drop_facts(state, listed)
    state.set_order(order)
    threads = [
        [uid for uid in uids if uid in listed]
        for uids in thread_uids(client.thread(state.threading))
    ]
    grouped = {uid for uids in threads for uid in uids}
    singles = [[uid] for uid in order if uid not in grouped]  # arrived between the two
    state.regroup([uids for uids in threads if uids] + singles, whole=state.threading == "REFS")


def _drop_facts(state: FolderState, present: set[int]) -> None:
    for uid in [uid for uid in state.facts if uid not in present]:
        del state.facts[uid]


def _drop_gone(state: FolderState, present: set[int]) -> None:
    """Only expunges since the last call: drop those messages, keep the rest."""
    gone = [uid for uid in state.order if uid not in present]
    for uid in gone:
        group = state.group_of.pop(uid)
        state.groups[group].remove(uid)
        state.unsettle(group)  # its oldest message may be the one gone
        if not state.groups[group]:
            del state.groups[group]
        state.facts.pop(uid, None)
    if gone:
        state.set_order([uid for uid in state.order if uid in present])


def _fetch_facts(state: FolderState, client: IMAPClient, folder: str, uids: Sequence[int]) -> None:
    for uid, fetched in fetch_headers(client, uids, folder, state.uidvalidity).items():
        state.facts[uid] = Facts(
            micros(fetched.date), fetched.id, fetched.summary.thread_id, message_ids(fetched)
        )


class ImapFolderView:
    """`thread_pages.FolderView` over a folder's state; fetches what a page reaches."""

    def __init__(
        self, state: FolderState, client: IMAPClient, folder: str, select: Callable[[], object]
    ) -> None:
        self.state, self.client, self.folder, self.select = state, client, folder, select

    @property
    def size(self) -> int:
        return len(self.state.order)

    def load(self, positions: Iterable[int], *, threads: bool = False) -> None:
        state = self.state
        uids = [state.order[position] for position in positions]
        self._facts(uid for uid in uids if uid not in state.facts)
        if threads:
            groups = {state.group_of[uid] for uid in uids}
            self._settle([group for group in groups if group not in state.thread_of])

    def _facts(self, uids: Iterable[int]) -> None:
        missing = sorted(set(uids))
        if not missing:
            return
        self.select()
        for start in range(0, len(missing), _FETCH_CHUNK):
            chunk = missing[start : start + _FETCH_CHUNK]
            _fetch_facts(self.state, self.client, self.folder, chunk)
        if any(uid not in self.state.facts for uid in missing):
            raise Gone(self.folder)

    def _settle(self, groups: list[int]) -> None:
        """Give the groups their thread ids, splitting those merged by subject first."""
        state = self.state
        split = [group for group in groups if group not in state.whole]
        self._facts(uid for group in split for uid in state.groups[group])
        for group in split:
            parts = link_components({uid: state.facts[uid].ids for uid in state.groups[group]})
            state.whole.add(group)
            if len(parts) > 1:
                del state.groups[group]
                groups.remove(group)
                groups += [state.new_group(part) for part in parts]
                state.whole.update(groups[-len(parts) :])
        at = state.position.__getitem__
        oldest = {group: max(state.groups[group], key=at) for group in groups}
        self._facts(oldest.values())
        for group, uid in oldest.items():
            thread = state.facts[uid].root
            other = state.group_by_thread.get(thread)
            if other is not None and other != group and other in state.groups:
                # Two groups, one id: one thread (its messages name one root).
                for member in state.groups.pop(group):
                    state.groups[other].append(member)
                    state.group_of[member] = other
                continue
            state.thread_of[group] = thread
            state.group_by_thread[thread] = group

    def stamp(self, position: int) -> int:
        return self.state.facts[self.state.order[position]].stamp

    def message_id(self, position: int) -> str:
        return self.state.facts[self.state.order[position]].port_id

    def thread(self, position: int) -> str:
        state = self.state
        return state.thread_of[state.group_of[state.order[position]]]

    def members(self, position: int) -> Sequence[int]:
        state = self.state
        group = state.groups[state.group_of[state.order[position]]]
        return [state.position[uid] for uid in group]

    def flags(self, positions: Sequence[int]) -> Mapping[int, tuple[bool, frozenset[str]]]:
        if not positions:
            return {}
        self.select()
        uids = {self.state.order[position]: position for position in positions}
        found: dict[int, tuple[bool, frozenset[str]]] = {}
        for uid, flags in self.client.get_flags(sorted(uids)).items():
            found[uids[uid]] = (SEEN in flags, keywords(flags))
        return found
