"""Which messages of an IMAP mailbox make a thread.

A thread is the messages linked by their ids: two messages are in one thread when one's
References or In-Reply-To names the other, or both name the same message (a parent no
folder holds). In a folder the server says so where it can (RFC 5256 `UID THREAD`):
THREAD=REFS is exactly that; THREAD=REFERENCES is that plus RFC 5256's merging by base
subject, which joins unrelated mail that shares a subject ("Your receipt", "Sign-in
alert": every month's in one thread, so the jobs would see only the newest), so its
threads are split back into their linked parts here. A server with neither: the links
are read from the headers (`link_components`). Every path gives the same threads.

A thread's id is the thread root (`imap_messages`) of its oldest message in the folder:
it stays as the thread grows, and a conversation whose messages carry its root in
References (what mail clients write) has the same id in every folder.

`linked` finds a thread across folders: the messages naming the id, then those naming
any id of theirs, and so on, by SEARCH HEADER in each folder the jobs search.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

from tasks.mail.imap_messages import Fetched, searchable

Key = TypeVar("Key", bound=Hashable)

MAX_ROUNDS = 8  # links followed from the thread id outwards, at most
MAX_IDS = 2_000  # ids of one thread searched for, at most (a runaway References chain)
_IDS_PER_SEARCH = 20


def thread_uids(response: Iterable[object]) -> list[list[int]]:
    """The UIDs of each thread of a THREAD response, as IMAPClient parses it: one nested
    tuple a thread, `(3, (4,), (7,))` being 3 with the replies 4 and 7."""
    return [list(_flatten(thread)) for thread in response]


def _flatten(node: object) -> Iterable[int]:
    if isinstance(node, int):
        yield node
    elif isinstance(node, tuple | list):
        for child in node:
            yield from _flatten(child)


def link_components(ids_of: Mapping[Key, Sequence[str]]) -> list[list[Key]]:
    """The keys grouped so that keys sharing an id are in one group (each key has at
    least one id: its own); groups in the order of their first key."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        parent.setdefault(name, name)
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for ids in ids_of.values():
        first = root(ids[0])
        for other in ids[1:]:
            top = root(other)
            if top != first:
                parent[top] = first
    groups: dict[str, list[Key]] = {}
    for key, ids in ids_of.items():
        groups.setdefault(root(ids[0]), []).append(key)
    return list(groups.values())


def message_ids(fetched: Fetched) -> tuple[str, ...]:
    """The ids a message links by: its own (or its place, without a usable one), then its
    links."""
    own = fetched.summary.message_id if searchable(fetched.summary.message_id) else fetched.id
    return (own, *(link for link in fetched.links if link != own))


# Finds the messages of one folder whose Message-ID, References or In-Reply-To names one
# of the ids (a SEARCH then a fetch of the header fields), by UID.
FolderSearch = Callable[[str, Sequence[str]], dict[int, Fetched]]


def linked(
    search: FolderSearch, folders: Sequence[str], thread_id: str
) -> dict[str, dict[int, Fetched]]:
    """Folder -> UID -> message, for every message linked to the thread id."""
    wanted, asked = {thread_id}, set[str]()
    if not searchable(thread_id):
        return {}
    found: dict[str, dict[int, Fetched]] = {folder: {} for folder in folders}
    for _ in range(MAX_ROUNDS):
        new = sorted(wanted - asked)
        if not new:
            break
        asked.update(new)
        for folder in folders:
            for start in range(0, len(new), _IDS_PER_SEARCH):
                chunk = new[start : start + _IDS_PER_SEARCH]
                for uid, fetched in search(folder, chunk).items():
                    ids = message_ids(fetched)
                    # SEARCH HEADER matches substrings: an id must be a whole one.
                    if uid in found[folder] or not set(ids) & set(chunk):
                        continue
                    found[folder][uid] = fetched
                    if len(wanted) < MAX_IDS:
                        wanted.update(ids)
    return {folder: messages for folder, messages in found.items() if messages}


def header_criteria(ids: Sequence[str]) -> list[object]:
    """SEARCH criteria: a Message-ID, References or In-Reply-To naming one of the ids."""
    terms = [["HEADER", name, value] for value in ids for name in _LINK_HEADERS]
    criteria: list[object] = []
    for term in terms[:-1]:
        criteria += ["OR", *term]
    return criteria + terms[-1]


_LINK_HEADERS = ("Message-ID", "References", "In-Reply-To")
