"""A Gmail mailbox through the Gmail REST API (google-api-python-client), with access
tokens google-auth refreshes from the account's stored refresh token.

Message ids and thread ids are Gmail's own. Gmail has labels, not folders
(`gmail_messages`): archiving takes the INBOX label off, moving to a folder puts the
folder's label on and takes INBOX off, and a message's folder is INBOX, Sent, Drafts or
else Archive. Labels are found by name whatever their case and created once
(`gmail_labels`). Listing is Gmail's own threads.list, newest first, with Gmail's page
tokens. A send is idempotent like the other adapters': the Message-ID comes from the
idempotency key, and a sent message with that Message-ID is looked for first. Failures
are the port's (`gmail_calls`).

One provider serves one account; its requests run one at a time.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from bridge.outcome import PermanentError
from tasks.mail.composing import message_id_for, outgoing_message
from tasks.mail.gmail_calls import SCOPES, BadRequest, GmailCalls
from tasks.mail.gmail_labels import USER, GmailLabels
from tasks.mail.gmail_messages import (
    ARCHIVE,
    FOLDER_LABELS,
    INBOX,
    body_part,
    encode_data,
    header_values,
    is_gone,
    mail_message,
)
from tasks.mail.maildir_headers import unfold
from tasks.mail.oauth_grant import OAuthGrant
from tasks.mail.oauth_settings import OAuthSettings
from tasks.mail.port import (
    InvalidPageToken,
    MailMessage,
    MessageNotFound,
    OutgoingMail,
    ThreadPage,
)
from tasks.mail.send_once import mailbox_key, send_once

__all__ = ["BATCH_MODIFY_LIMIT", "SCOPES", "GmailProvider"]

BATCH_MODIFY_LIMIT = 1000  # ids per users.messages.batchModify, Gmail's maximum
_MAX_RESULTS = 500  # threads per users.threads.list page, Gmail's maximum
_ARCHIVED = "-in:inbox -in:sent -in:drafts"  # the port's Archive: All Mail, as a search


class GmailProvider:
    def __init__(self, grant: OAuthGrant, settings: OAuthSettings) -> None:
        self.grant = grant
        self.address = grant.email
        self._calls = GmailCalls(grant, settings)
        self._labels = GmailLabels(self._calls)

    @property
    def _messages(self) -> Any:
        return self._calls.service.users().messages()

    @property
    def _threads(self) -> Any:
        return self._calls.service.users().threads()

    def close(self) -> None:
        """Close the HTTP connections (reopened if the provider is used again)."""
        self._calls.close()

    # Reading ---------------------------------------------------------------------------
    def get_message(self, message_id: str) -> MailMessage:
        request = self._messages.get(userId=USER, id=message_id, format="full")
        resource = self._calls.run("users.messages.get", request, missing=message_id)
        if is_gone(resource):
            raise MessageNotFound(message_id)
        return self._message(resource)

    def _message(self, resource: dict[str, Any]) -> MailMessage:
        self._fetch_body_data(resource)
        names = self._labels.user_label_names(list(resource.get("labelIds") or ()))
        return mail_message(resource, names, self.address)

    def _fetch_body_data(self, resource: dict[str, Any]) -> None:
        """Gmail leaves a large body part's data out (an attachmentId instead): fetched."""
        part = body_part(resource.get("payload") or {})
        body = part.get("body") if part is not None else None
        if not isinstance(body, dict) or body.get("data") or not body.get("attachmentId"):
            return
        request = self._messages.attachments().get(
            userId=USER, messageId=resource["id"], id=body["attachmentId"]
        )
        answer = self._calls.run(
            "users.messages.attachments.get", request, missing=str(resource["id"])
        )
        body["data"] = answer.get("data") or ""

    def get_thread(self, thread_id: str) -> list[MailMessage]:
        """Every message of the thread not in Trash or Spam, oldest first."""
        request = self._threads.get(userId=USER, id=thread_id, format="full")
        thread = self._calls.run("users.threads.get", request, missing=thread_id)
        messages = [self._message(m) for m in thread.get("messages") or () if not is_gone(m)]
        if not messages:
            raise MessageNotFound(thread_id)
        oldest = datetime.min.replace(tzinfo=UTC)
        return sorted(messages, key=lambda m: (m.date or oldest, m.id))

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
        """Threads with a message in `folder` dated in [after, before), newest first, as
        Gmail's threads.list finds them; its nextPageToken is the page token."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        terms: list[str] = []
        label_ids: list[str] = []
        if folder == ARCHIVE:
            terms.append(_ARCHIVED)
        else:
            label = FOLDER_LABELS.get(folder) or self._labels.find(folder)
            if label is None:
                return ThreadPage(thread_ids=[], next_page_token=None)  # no such folder
            label_ids.append(label)
        if after is not None:
            terms.append(f"after:{math.floor(after.timestamp())}")
        if before is not None:
            terms.append(f"before:{math.ceil(before.timestamp())}")
        if unread_only:
            terms.append("is:unread")
        terms += [f"-label:{_quoted(name)}" for name in self._label_names(exclude_labels)]
        request = self._threads.list(
            userId=USER,
            labelIds=label_ids or None,
            q=" ".join(terms) or None,
            maxResults=min(page_size, _MAX_RESULTS),
            pageToken=page_token,
        )
        try:
            answer = self._calls.run("users.threads.list", request)
        except BadRequest as error:
            if page_token is not None:  # the one parameter a caller may get wrong
                raise InvalidPageToken(str(error)) from None
            raise
        return ThreadPage(
            thread_ids=[str(thread["id"]) for thread in answer.get("threads") or ()],
            next_page_token=answer.get("nextPageToken") or None,
        )

    def _label_names(self, labels: Iterable[str]) -> list[str]:
        """The names of the labels that exist (one no message carries excludes nothing)."""
        names = (self._labels.name_of(label) for label in labels)
        return [name for name in names if name is not None]

    def list_labels(self) -> list[str]:
        """The user's own labels, by name (Gmail's system labels are not listed)."""
        return self._labels.user_names()

    def is_starred(self, message: MailMessage) -> bool:
        request = self._messages.get(userId=USER, id=message.id, format="minimal")
        try:
            resource = self._calls.run("users.messages.get", request, missing=message.id)
        except MessageNotFound:
            return False  # gone since the thread was read: it no longer tells
        return "STARRED" in (resource.get("labelIds") or ())

    # Changing --------------------------------------------------------------------------
    def archive(self, message_id: str) -> None:
        self._modify(message_id, remove=["INBOX"])

    def mark_read(self, message_id: str) -> None:
        self._modify(message_id, remove=["UNREAD"])

    def label(self, message_id: str, label: str) -> None:
        self._modify(message_id, add=[self._labels.ensure(label)])

    def move(self, message_id: str, folder: str) -> None:
        """Into the folder's label and out of the inbox; Archive is archive, and INBOX
        puts the message back in the inbox."""
        if folder.casefold() == ARCHIVE.casefold():
            self.archive(message_id)
        elif folder.casefold() == INBOX.casefold():
            self._modify(message_id, add=["INBOX"])
        elif folder in FOLDER_LABELS:
            raise PermanentError(f"{self.address}: Gmail moves no message into {folder}")
        else:
            self._modify(message_id, add=[self._labels.ensure(folder)], remove=["INBOX"])

    def _modify(
        self, message_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None:
        body = {"addLabelIds": list(add), "removeLabelIds": list(remove)}
        request = self._messages.modify(userId=USER, id=message_id, body=body)
        self._calls.run("users.messages.modify", request, missing=message_id)

    def change_many(
        self,
        message_ids: Sequence[str],
        *,
        labels: Sequence[str] = (),
        archive: bool = False,
        mark_read: bool = False,
    ) -> None:
        """The labels added, INBOX and UNREAD removed, in whichever costs less of Gmail's
        per-user quota: one messages.modify per message (5 units each) for a few, one
        batchModify per 1,000 (50 units each) for more."""
        add = [self._labels.ensure(label) for label in labels]
        remove = [*(["INBOX"] if archive else []), *(["UNREAD"] if mark_read else [])]
        ids = list(dict.fromkeys(message_ids))
        if not ids or not (add or remove):
            return
        if len(ids) * MODIFY_UNITS > BATCH_MODIFY_UNITS:
            self.modify_many(ids, add, remove)
            return
        for message_id in ids:
            try:
                self._modify(message_id, add=add, remove=remove)
            except MessageNotFound:
                continue  # deleted since it was listed: nothing to change

    def modify_many(
        self,
        message_ids: Sequence[str],
        add_label_ids: Sequence[str] = (),
        remove_label_ids: Sequence[str] = (),
    ) -> None:
        """Add and remove label ids on many messages: users.messages.batchModify, at most
        BATCH_MODIFY_LIMIT ids a call. Gmail passes over ids it does not know."""
        ids = list(dict.fromkeys(message_ids))
        for start in range(0, len(ids), BATCH_MODIFY_LIMIT):
            body = {
                "ids": ids[start : start + BATCH_MODIFY_LIMIT],
                "addLabelIds": list(add_label_ids),
                "removeLabelIds": list(remove_label_ids),
            }
            request = self._messages.batchModify(userId=USER, body=body)
            self._calls.run("users.messages.batchModify", request)

    # Sending ---------------------------------------------------------------------------
    def send(self, mail: OutgoingMail) -> str:
        """Send and return the sent message's Gmail id; one idempotency key sends once:
        recorded in the database, and looked up in Sent by the Message-ID derived from
        the key (Gmail may replace it, so the record is what counts)."""
        if not mail.idempotency_key:
            return self._send(mail)
        key = mailbox_key(self.address, mail.idempotency_key)
        return send_once(key, "gmail", lambda: self._send(mail))

    def _send(self, mail: OutgoingMail) -> str:
        header = message_id_for(mail)
        if mail.idempotency_key:
            sent = self._find_by_message_id(header, "in:sent")
            if sent is not None:
                return str(sent["id"])  # sent before
        thread_id: str | None = None
        references: list[str] = []
        if mail.in_reply_to:
            thread_id, parent_header, references = self._parent(mail.in_reply_to)
            mail = dataclasses.replace(mail, in_reply_to=parent_header)
        message = outgoing_message(mail, self.address, header, references)
        body: dict[str, str] = {"raw": encode_data(message.as_bytes())}
        if thread_id is not None:
            body["threadId"] = thread_id
        request = self._messages.send(userId=USER, body=body)
        answer = self._calls.run("users.messages.send", request)
        return str(answer["id"])

    def _parent(self, in_reply_to: str) -> tuple[str | None, str, list[str]]:
        """The thread a reply joins, the parent's Message-ID and the reply's References:
        the parent's References plus the parent (RFC 5322 3.6.4). `in_reply_to` is the
        parent's Message-ID, or its Gmail id."""
        looked_up = "@" in in_reply_to or in_reply_to.startswith("<")
        if looked_up:
            found = self._find_by_message_id(in_reply_to)
            if found is None:
                return None, in_reply_to, [in_reply_to]  # not in this mailbox: no thread
            parent_id = str(found["id"])
        else:
            parent_id = in_reply_to
        request = self._messages.get(
            userId=USER,
            id=parent_id,
            format="metadata",
            metadataHeaders=["Message-ID", "References"],
        )
        parent = self._calls.run("users.messages.get", request, missing=parent_id)
        headers = header_values(parent.get("payload") or {})
        own = unfold(headers.get("message-id", "")) or in_reply_to
        if looked_up and own.strip("<> ") != in_reply_to.strip("<> "):
            return None, in_reply_to, [in_reply_to]  # the search found another message
        references = unfold(headers.get("references", "")).split()
        return str(parent["threadId"]), own, [*references, own]

    def _find_by_message_id(self, message_id: str, *terms: str) -> dict[str, Any] | None:
        """The message (id and threadId) whose Message-ID header is this one, outside
        Trash and Spam. The id comes from a sender's mail: one that is not a plain
        `left@right` (spaces, quotes, parentheses: search syntax) is looked for nowhere."""
        bare = message_id.strip().strip("<>")
        if not _PLAIN_MESSAGE_ID.fullmatch(bare):
            return None
        query = " ".join([f"rfc822msgid:{bare}", *terms])
        request = self._messages.list(userId=USER, q=query, includeSpamTrash=False, maxResults=1)
        answer = self._calls.run("users.messages.list", request)
        found = answer.get("messages") or []
        return dict(found[0]) if found else None


# Gmail's quota cost of one messages.modify and of one batchModify.
MODIFY_UNITS, BATCH_MODIFY_UNITS = 5, 50

# No whitespace, quotes, parentheses or braces: the characters Gmail's search reads as syntax.
_PLAIN_MESSAGE_ID = re.compile(r'[^\s"(){}<>\\]+@[^\s"(){}<>\\]+')


def _quoted(name: str) -> str:
    return '"' + name.replace('"', "") + '"'
