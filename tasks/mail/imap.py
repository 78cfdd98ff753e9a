"""A mailbox on any IMAP server, sending through its SMTP server (IMAPClient, smtplib).

Message ids are the messages' Message-ID headers: unlike UIDs they survive a move (an
archived message keeps its id), so a job can act on a message another job moved. A
message without a usable Message-ID gets `uid:<UIDVALIDITY>:<UID>:<folder>`, valid as
long as it stays where it is. Either way the adapter finds the message and acts on it by
UID under the folder's current UIDVALIDITY, never by sequence number. It finds it by a
per-process index of each folder's Message-IDs (`imap_lookup`), confirmed by the server,
not by a SEARCH, which reads every message of the folder.

Threads are the server's (`UID THREAD`) where it has THREAD=REFS or THREAD=REFERENCES,
else the References/In-Reply-To links (`imap_threads`); a thread spans folders (a reply
in Sent belongs to the thread in INBOX). Listing walks a folder state kept between calls
(`imap_index`), so a page costs the same deep in a large folder. Labels are IMAP keywords
where the folder allows custom ones (PERMANENTFLAGS `\\*`), else copies into a folder of
that name. A send goes through SMTP and is then appended to the Sent folder; one
idempotency key sends once (its copy in Sent, and a record: `imap_send`).
"""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from functools import partial

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from bridge.outcome import PermanentError
from tasks.mail import imap_lookup, imap_pool
from tasks.mail.composing import message_id_for, outgoing_message, recipients_of
from tasks.mail.imap_folders import ARCHIVE, INBOX, SENT, Folders, ensure_folder, read_folders
from tasks.mail.imap_index import Gone, Threading, folder_view
from tasks.mail.imap_messages import (
    Fetched,
    fetch_headers,
    fetch_whole,
    message_from,
)
from tasks.mail.imap_send import send_and_keep
from tasks.mail.imap_session import ServerSettings, open_imap
from tasks.mail.imap_threads import header_criteria, linked
from tasks.mail.maildir_headers import as_utc
from tasks.mail.one_by_one import change_one_by_one
from tasks.mail.port import MailMessage, MessageNotFound, OutgoingMail, ThreadPage
from tasks.mail.send_once import mailbox_key
from tasks.mail.smtp_submit import submit
from tasks.mail.thread_pages import NO_MESSAGES, walk_page

SEEN, FLAGGED = b"\\Seen", b"\\Flagged"
_KEYWORD = re.compile(r"^[A-Za-z0-9_$.\-]{1,64}$")  # an IMAP atom any server takes
_LISTING_ATTEMPTS = 3  # messages expunged while a page is read: read the folder again


class ImapProvider:
    def __init__(
        self,
        imap: ServerSettings,
        smtp: ServerSettings | None,
        address: str,
        *,
        hide_capabilities: Iterable[str] = (),
    ) -> None:
        """`hide_capabilities`: server capabilities not to use (tests of the fallbacks)."""
        self.imap, self.smtp, self.address = imap, smtp, address
        self.hidden = frozenset(name.upper() for name in hide_capabilities)
        self._client: IMAPClient | None = None
        self._closer: weakref.finalize[..., object] | None = None
        self._folders: Folders | None = None
        # The folder selected now, whether writable, and the server's answer to SELECT.
        self._selected: tuple[str, bool, dict[bytes, object]] | None = None
        self._found: dict[str, tuple[str, int]] = {}  # id -> (folder, UID) last seen

    @property
    def client(self) -> IMAPClient:
        """The connection: one per provider, taken on first use from the process's kept
        ones (`imap_pool`) or opened, and given back when the provider is collected."""
        if self._client is None:
            client = imap_pool.take(self.imap)
            if client is None:
                client = open_imap(self.imap)
                client.normalise_times = False  # aware datetimes
            self._client = client
            self._closer = weakref.finalize(self, imap_pool.give_back, self.imap, client)
        return self._client

    def close(self) -> None:
        """Log out now, rather than give the connection back for another job."""
        if self._closer is not None and self._closer.detach() is not None:
            assert self._client is not None
            _logout(self._client)
        self._client, self._closer, self._selected = None, None, None

    def has(self, capability: str) -> bool:
        return capability.upper() not in self.hidden and bool(
            self.client.has_capability(capability)
        )

    @property
    def threading(self) -> Threading:
        """How a folder's threads are found: the server's THREAD (with SORT), or headers."""
        if self.has("SORT") and self.has("THREAD=REFS"):
            return "REFS"
        if self.has("SORT") and self.has("THREAD=REFERENCES"):
            return "REFERENCES"
        return "headers"

    @property
    def folders(self) -> Folders:
        if self._folders is None:
            self._folders = read_folders(self.client)
        return self._folders

    def select(self, folder: str, *, writable: bool = False) -> dict[bytes, object]:
        """Select the folder unless it is selected already (a writable selection serves a
        reader too): each command sees the folder as it is now, new messages included."""
        if self._selected is not None:  # only this method selects on the connection
            current, current_writable, response = self._selected
            if current == folder and (current_writable or not writable):
                return response
        self._selected = None  # a refused SELECT leaves no folder selected (RFC 9051)
        response = dict(self.client.select_folder(folder, readonly=not writable))
        self._selected = (folder, writable, response)
        return response

    # Reading ---------------------------------------------------------------------------
    def get_message(self, message_id: str) -> MailMessage:
        folder, uid = self._locate(message_id)
        return self._read(folder, uid)

    def _read(self, folder: str, uid: int) -> MailMessage:
        uidvalidity = self._uidvalidity(folder)
        fetched = fetch_whole(self.client, [uid], folder, uidvalidity)
        if uid not in fetched:
            raise MessageNotFound(f"uid:{uidvalidity}:{uid}:{folder}")
        return message_from(fetched[uid], self.folders.port_name(folder), self.address)

    def _uidvalidity(self, folder: str) -> int:
        response = self.select(folder)
        return int(str(response[b"UIDVALIDITY"]))

    def _locate(self, message_id: str) -> tuple[str, int]:
        """The folder and UID holding the message now, or MessageNotFound."""
        if message_id.startswith("uid:"):
            return self._locate_by_uid(message_id)
        known = self._found.get(message_id)
        order = list(dict.fromkeys([*([known[0]] if known else []), *self.folders.searchable]))
        # Where the folders' indexes (`imap_lookup`) say, where it was last seen first.
        for folder in order:
            with contextlib.suppress(IMAPClientError):  # a folder deleted since: not there
                found = self._verified(folder, message_id, refresh=False)
                if found is not None:
                    return folder, found
        # Then each folder's index brought up to date (what arrived since), folder by
        # folder; then any folder made since the list was read (by another job, or user).
        searched: set[str] = set()
        for refresh in (False, True):
            if refresh:
                self._folders = None
            for folder in self.folders.searchable:
                if folder in searched or not self.client.folder_exists(folder):
                    continue
                searched.add(folder)
                found = self._verified(folder, message_id, refresh=True)
                if found is not None:
                    return folder, found
        raise MessageNotFound(message_id)

    def _verified(self, folder: str, message_id: str, *, refresh: bool) -> int | None:
        """The UID holding the message in the folder, as its index says and the server
        confirms (a UID is never reused under one UIDVALIDITY: it is that message while it
        exists); with `refresh`, the index brought up to date first."""
        account = self._account
        selected = self._selected is not None and self._selected[0] == folder
        if refresh:
            imap_lookup.refresh(
                self.client, account, folder, lambda: self.select(folder), selected=selected
            )
        found = imap_lookup.candidates(account, folder, message_id)
        if found and selected and not refresh:
            # The selected folder's view lags other sessions (Dovecot serves a message
            # expunged since from its cache): a NOOP brings it up to date.
            self.client.noop()
        for uidvalidity, uid in found:
            if self._uidvalidity(folder) == uidvalidity and imap_lookup.holds(
                self.client, uid, message_id
            ):
                self._found[message_id] = (folder, uid)
                return uid
            imap_lookup.forget(account, folder, message_id, uid)
        return None

    @property
    def _account(self) -> tuple[object, ...]:
        return (self.imap.host, self.imap.port, self.imap.username)

    def _locate_by_uid(self, message_id: str) -> tuple[str, int]:
        _, validity, uid, folder = message_id.split(":", 3)
        if not self.client.folder_exists(folder) or str(self._uidvalidity(folder)) != validity:
            raise MessageNotFound(message_id)
        if not self.client.search(["UID", uid]):
            raise MessageNotFound(message_id)
        return folder, int(uid)

    def get_thread(self, thread_id: str) -> list[MailMessage]:
        if thread_id.startswith("uid:"):
            return [replace(self.get_message(thread_id), thread_id=thread_id)]
        folders = [name for name in self.folders.searchable if self.client.folder_exists(name)]
        found: dict[str, MailMessage] = {}
        for folder, messages in linked(self._search_linked, folders, thread_id).items():
            uidvalidity = self._uidvalidity(folder)
            for fetched in fetch_whole(self.client, list(messages), folder, uidvalidity).values():
                message = message_from(fetched, self.folders.port_name(folder), self.address)
                if message.id not in found:  # a copy in a label folder: the first one
                    found[message.id] = replace(message, thread_id=thread_id)
                    self._found[message.id] = (folder, fetched.uid)
        if not found:
            raise MessageNotFound(thread_id)
        oldest = datetime.min.replace(tzinfo=UTC)
        return sorted(found.values(), key=lambda m: (m.date or oldest, m.id))

    def _search_linked(self, folder: str, ids: Sequence[str]) -> dict[int, Fetched]:
        uidvalidity = self._uidvalidity(folder)
        uids = self.client.search(header_criteria(ids))
        return fetch_headers(self.client, uids, folder, uidvalidity)

    def list_threads(
        self,
        *,
        folder: str = INBOX,
        after: datetime | None = None,
        before: datetime | None = None,
        unread_only: bool = False,
        exclude_labels: Sequence[str] = (),
        page_token: str | None = None,
        page_size: int = 25,
    ) -> ThreadPage:
        """Threads with a message in `folder` dated in [after, before), newest first
        (`thread_pages`, as for every adapter)."""
        listing = partial(
            walk_page,
            after=None if after is None else as_utc(after),
            before=None if before is None else as_utc(before),
            unread_only=unread_only,
            exclude_labels=exclude_labels,
            page_token=page_token,
            page_size=page_size,
        )
        server_folder = self.folders.server_name(folder)
        if not self.client.folder_exists(server_folder):
            return listing(NO_MESSAGES)
        account = self._account
        for _ in range(_LISTING_ATTEMPTS):
            with (
                contextlib.suppress(Gone),
                folder_view(
                    self.client,
                    account,
                    server_folder,
                    self.threading,
                    lambda: self.select(server_folder),
                    selected=self._selected is not None and self._selected[0] == server_folder,
                ) as view,
            ):
                return listing(view)
        raise ConnectionError(f"IMAP {folder}: messages kept vanishing while it was listed")

    def list_labels(self) -> list[str]:
        response = self.select(INBOX)
        keywords = {
            flag.decode("utf-8", "replace")
            for flag in response.get(b"FLAGS", ())  # type: ignore[attr-defined]
            if not flag.startswith(b"\\")
        }
        special = {INBOX, self.folders.archive, self.folders.sent}
        return sorted(keywords | {name for name in self.folders.searchable if name not in special})

    def is_starred(self, message: MailMessage) -> bool:
        try:
            folder, uid = self._locate(message.id)
        except MessageNotFound:
            return False  # gone since the thread was read: it no longer tells
        self.select(folder)
        flags = self.client.get_flags([uid]).get(uid, ())
        return FLAGGED in flags

    # Changing --------------------------------------------------------------------------
    def archive(self, message_id: str) -> None:
        self.move(message_id, ARCHIVE)

    def change_many(
        self,
        message_ids: Sequence[str],
        *,
        labels: Sequence[str] = (),
        archive: bool = False,
        mark_read: bool = False,
    ) -> None:
        change_one_by_one(self, message_ids, labels=labels, archive=archive, mark_read=mark_read)

    def move(self, message_id: str, folder: str) -> None:
        current, uid = self._locate(message_id)
        target = self.folders.server_name(folder)
        if current == target:
            return  # already there: moving twice is one move
        ensure_folder(self.client, target)
        self.select(current, writable=True)
        if self.client.has_capability("MOVE"):
            self.client.move([uid], target)
        else:
            self.client.copy([uid], target)
            self.client.delete_messages([uid])
            self.client.uid_expunge([uid])
        self._found.pop(message_id, None)
        imap_lookup.forget(self._account, current, message_id, uid)

    def mark_read(self, message_id: str) -> None:
        folder, uid = self._locate(message_id)
        self.select(folder, writable=True)
        self.client.add_flags([uid], [SEEN])

    def label(self, message_id: str, label: str) -> None:
        folder, uid = self._locate(message_id)
        if _KEYWORD.match(label) and self.takes_keywords(folder):
            self.select(folder, writable=True)
            self.client.add_flags([uid], [label.encode()])
            return
        # No custom keywords here: the label is a folder holding a copy, made once.
        ensure_folder(self.client, label)
        if self._holds(label, message_id):
            return
        self.select(folder, writable=True)
        self.client.copy([uid], label)

    def takes_keywords(self, folder: str) -> bool:
        """Whether the folder keeps custom keywords (PERMANENTFLAGS `\\*`); a read-only
        EXAMINE lists no permanent flags, so the folder is selected writable."""
        permanent = self.select(folder, writable=True).get(b"PERMANENTFLAGS")
        return isinstance(permanent, tuple) and b"\\*" in permanent

    def _holds(self, folder: str, message_id: str) -> bool:
        if message_id.startswith("uid:"):
            return False
        return self._verified(folder, message_id, refresh=True) is not None

    def send(self, mail: OutgoingMail) -> str:
        if self.smtp is None:
            raise PermanentError(f"{self.address}: no SMTP server in the account's settings")
        header = message_id_for(mail)
        sent = self.folders.server_name(SENT)
        ensure_folder(self.client, sent)
        if mail.idempotency_key and self._holds(sent, header):
            return header  # sent before
        references = self._references_for_reply(mail.in_reply_to) if mail.in_reply_to else []
        message = outgoing_message(mail, self.address, header, references)
        smtp, where = self.smtp, f"SMTP {self.smtp.host}:{self.smtp.port}"
        key = mail.idempotency_key
        send_and_keep(
            self.client,
            sent,
            message,
            lambda: submit(smtp, message, self.address, recipients_of(mail), where),
            mailbox_key(self.address, key) if key else None,
        )
        return header

    def _references_for_reply(self, parent_id: str) -> list[str]:
        """The parent's References plus the parent (RFC 5322 3.6.4)."""
        try:
            parent = self.get_message(parent_id)
        except MessageNotFound:
            return [parent_id]
        references = parent.headers.get("references", "").split()
        return [*references, parent_id]

    def deliver(self, message: EmailMessage) -> str:
        """Put an incoming message in the inbox (demo data and tests); its id."""
        self.client.append(INBOX, message.as_bytes())
        return str(message.get("Message-ID", "")).strip()


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # the server or the socket may already be gone
        with contextlib.suppress(OSError):
            client.shutdown()
