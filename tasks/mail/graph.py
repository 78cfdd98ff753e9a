"""An Outlook / Microsoft 365 mailbox through Microsoft Graph (v1.0 mail API).

Message ids are Graph's immutable ids (every request says `Prefer: IdType="ImmutableId"`),
so a message keeps its id when it is archived or moved. Threads are conversations
(conversationId). Labels are categories (added to the message's own); the star is the
follow-up flag. Folders are named as for the other adapters (`graph_folders`): INBOX,
Archive, Sent and Drafts are Graph's well-known folders; any other name is a folder's
displayName, created once when a message is moved there.

This module holds the provider. Tokens are in `graph_token`, requests, batching and
Graph's errors in `graph_http`, folders in `graph_folders`, message JSON in
`graph_messages`, list_threads and its cursors in `graph_listing`, sending in
`graph_send`, and `apply_many` in `graph_bulk`.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tasks.mail import graph_bulk, graph_send
from tasks.mail.graph_folders import ARCHIVE, INBOX, GraphFolders, odata_text
from tasks.mail.graph_http import GraphApi, path_of
from tasks.mail.graph_listing import list_page
from tasks.mail.graph_messages import MESSAGE_FIELDS, flagged, mail_message, parse_time
from tasks.mail.graph_token import SCOPES, GraphTokens
from tasks.mail.oauth_grant import OAuthGrant
from tasks.mail.oauth_settings import OAuthSettings
from tasks.mail.port import MailMessage, MessageNotFound, OutgoingMail, ThreadPage
from tasks.mail.send_once import mailbox_key, send_once
from tasks.mail.token_cache import shared_holder

__all__ = ["SCOPES", "GraphProvider"]

_THREAD_PAGE = "100"  # messages per request when reading a conversation


class GraphProvider:
    def __init__(self, grant: OAuthGrant, settings: OAuthSettings) -> None:
        self.address = grant.email
        tokens = shared_holder(
            ("microsoft", grant.email, grant.client_id, settings.microsoft_authority),
            grant.refresh_token,
            lambda: GraphTokens(grant, settings),
        )
        self.api = GraphApi(tokens, settings.microsoft_graph_url, grant.email)
        self.folders = GraphFolders(self.api)
        self._flags: dict[str, bool] = {}  # id -> flagged, as last read
        self._closer = weakref.finalize(self, self.api.close)

    def close(self) -> None:
        """Close the HTTP client (also done when the provider is garbage collected)."""
        self._closer()

    def __repr__(self) -> str:
        return f"GraphProvider({self.address!r})"

    # Reading ---------------------------------------------------------------------------
    def get_message(self, message_id: str) -> MailMessage:
        return self._message(self._read(message_id, MESSAGE_FIELDS))

    def _read(self, message_id: str, fields: str) -> dict[str, Any]:
        """The message's fields; MessageNotFound if it is gone, or in Deleted Items or
        Junk Email (it no longer exists for the jobs)."""
        data = self.api.call(
            "read a message",
            "GET",
            path_of("me", "messages", message_id),
            params={"$select": fields},
        )
        if self.folders.is_hidden(str(data.get("parentFolderId", ""))):
            raise MessageNotFound(message_id)
        return data

    def _message(self, data: dict[str, Any]) -> MailMessage:
        self._flags[str(data["id"])] = flagged(data)
        folder = self.folders.port_name(str(data.get("parentFolderId", "")))
        return mail_message(data, folder, self.address)

    def get_thread(self, thread_id: str) -> list[MailMessage]:
        found: dict[str, dict[str, Any]] = {}
        path = "me/messages"
        params: dict[str, str] | None = {
            "$filter": f"conversationId eq {odata_text(thread_id)}",
            "$select": MESSAGE_FIELDS,
            "$top": _THREAD_PAGE,
        }
        while True:
            answer = self.api.call("read a conversation", "GET", path, params=params)
            for item in answer.get("value", []):
                if not isinstance(item, dict) or not item.get("id") or item.get("isDraft"):
                    continue  # drafts were never sent nor received
                if not self.folders.is_hidden(str(item.get("parentFolderId", ""))):
                    found.setdefault(str(item["id"]), item)
            link = answer.get("@odata.nextLink")
            if not isinstance(link, str):
                break
            path, params = link, None
        if not found:
            raise MessageNotFound(thread_id)
        ordered = sorted(
            found.values(), key=lambda m: (parse_time(m.get("receivedDateTime")), str(m["id"]))
        )
        return [self._message(item) for item in ordered]

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
        (`graph_listing`: Graph filters and orders; the tokens are cursors)."""
        return list_page(
            self.api,
            self.folders,
            folder=folder,
            after=after,
            before=before,
            unread_only=unread_only,
            exclude_labels=exclude_labels,
            page_token=page_token,
            page_size=page_size,
        )

    def list_labels(self) -> list[str]:
        """The mailbox's categories (Outlook's master list; reading it takes the
        MailboxSettings.Read permission)."""
        answer = self.api.call("list categories", "GET", "me/outlook/masterCategories")
        return sorted(
            {
                str(category["displayName"])
                for category in answer.get("value", [])
                if isinstance(category, dict) and category.get("displayName")
            }
        )

    def is_starred(self, message: MailMessage) -> bool:
        """The follow-up flag, as read with the message (or read now)."""
        if message.id in self._flags:
            return self._flags[message.id]
        try:
            data = self._read(message.id, "id,parentFolderId,flag")
        except MessageNotFound:
            return False  # gone since the thread was read: it no longer tells
        return flagged(data)

    # Changing --------------------------------------------------------------------------
    def archive(self, message_id: str) -> None:
        self.move(message_id, ARCHIVE)

    def move(self, message_id: str, folder: str) -> None:
        current = self._read(message_id, "id,parentFolderId")
        target = self.folders.id_of(folder)
        if target is not None and current.get("parentFolderId") == target:
            return  # already there: moving twice is one move
        self.api.call(
            f"move a message to {folder!r}",
            "POST",
            path_of("me", "messages", message_id, "move"),
            body={"destinationId": self.folders.destination(folder, target)},
        )

    def mark_read(self, message_id: str) -> None:
        self.api.call(
            "mark a message read",
            "PATCH",
            path_of("me", "messages", message_id),
            body={"isRead": True},
        )

    def label(self, message_id: str, label: str) -> None:
        current = self._read(message_id, "id,parentFolderId,categories")
        categories = [str(c) for c in current.get("categories") or []]
        if label in categories:
            return
        self.api.call(
            "categorize a message",
            "PATCH",
            path_of("me", "messages", message_id),
            body={"categories": [*categories, label]},
        )

    def send(self, mail: OutgoingMail) -> str:
        """One idempotency key sends once: recorded in the database, and looked up in the
        mailbox by the internetMessageId derived from the key (which sendMail may not
        keep, so the record is what counts)."""
        if not mail.idempotency_key:
            return graph_send.send(self.api, self.folders, mail, self.address)
        key = mailbox_key(self.address, mail.idempotency_key)
        return send_once(
            key, "graph", lambda: graph_send.send(self.api, self.folders, mail, self.address)
        )

    def change_many(
        self,
        message_ids: Sequence[str],
        *,
        labels: Sequence[str] = (),
        archive: bool = False,
        mark_read: bool = False,
    ) -> None:
        """Through $batch (20 requests a batch): categories and isRead in one PATCH per
        message, then the moves to the archive."""
        if message_ids and (labels or archive or mark_read):
            graph_bulk.apply_many(
                self.api,
                self.folders,
                message_ids,
                mark_read=mark_read,
                labels=labels,
                folder=ARCHIVE if archive else None,
            )

    def apply_many(
        self,
        message_ids: Sequence[str],
        *,
        mark_read: bool = False,
        label: str | None = None,
        folder: str | None = None,
    ) -> list[str]:
        """Label, mark read and/or move many messages through JSON batching (20 requests
        to a batch); the ids of those that no longer exist. Throttling inside a batch is
        RetryLater with its Retry-After; repeating the call changes nothing done."""
        return graph_bulk.apply_many(
            self.api,
            self.folders,
            message_ids,
            mark_read=mark_read,
            labels=() if label is None else (label,),
            folder=folder,
        )
