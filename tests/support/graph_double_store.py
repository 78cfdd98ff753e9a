"""The Graph double's mailbox: folders (the well-known ones and the user's), messages
with Graph's properties, and the master categories.

Each message has two ids, as in Exchange: its immutable id, which never changes, and its
REST id, which changes whenever the message moves (an old REST id is then not found). A
request with `Prefer: IdType="ImmutableId"` is answered with immutable ids; any other
with REST ids. Either kind is accepted in a path.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Graph's well-known folder names and their display names.
WELL_KNOWN = {
    "inbox": "Inbox",
    "archive": "Archive",
    "sentitems": "Sent Items",
    "drafts": "Drafts",
    "deleteditems": "Deleted Items",
    "junkemail": "Junk Email",
}
MESSAGE_PROPERTIES = frozenset(
    {"id", "createdDateTime", "lastModifiedDateTime", "changeKey", "categories",
     "receivedDateTime", "sentDateTime", "hasAttachments", "internetMessageId",
     "internetMessageHeaders", "subject", "body", "bodyPreview", "importance",
     "parentFolderId", "sender", "from", "toRecipients", "ccRecipients", "bccRecipients",
     "replyTo", "conversationId", "conversationIndex", "uniqueBody",
     "isDeliveryReceiptRequested", "isReadReceiptRequested", "isRead", "isDraft",
     "webLink", "inferenceClassification", "flag"}
)  # fmt: skip
FOLDER_PROPERTIES = frozenset(
    {"id", "displayName", "parentFolderId", "childFolderCount", "unreadItemCount",
     "totalItemCount", "isHidden"}
)  # fmt: skip
# Returned only when $select names them (Graph's documentation says so for both).
SELECT_ONLY = frozenset({"internetMessageHeaders", "uniqueBody"})


def new_id(prefix: str) -> str:
    """An id shaped like Exchange's: URL-safe base64, 100-odd characters."""
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(96)).decode().rstrip("=")


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def recipient(text: str) -> dict[str, Any]:
    from email.utils import parseaddr

    name, address = parseaddr(text)
    email: dict[str, str] = {"address": address or text}
    if name:
        email["name"] = name
    return {"emailAddress": email}


def received(
    subject: str,
    sender: str,
    to: str,
    text: str,
    *,
    html: bool,
    when: datetime,
    conversation: str,
    headers: dict[str, str],
) -> dict[str, Any]:
    """A received message's properties (read, unflagged, uncategorized)."""
    moment = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "subject": subject,
        "from": recipient(sender),
        "sender": recipient(sender),
        "toRecipients": [recipient(address.strip()) for address in to.split(",")],
        "ccRecipients": [],
        "bccRecipients": [],
        "replyTo": [],
        "body": {"contentType": "html" if html else "text", "content": text},
        "conversationId": conversation,
        "internetMessageId": headers["Message-ID"],
        "receivedDateTime": moment,
        "sentDateTime": moment,
        "createdDateTime": moment,
        "lastModifiedDateTime": moment,
        "isRead": True,
        "isDraft": False,
        "categories": [],
        "hasAttachments": False,
        "importance": "normal",
        "flag": {"flagStatus": "notFlagged"},
        "internetMessageHeaders": [{"name": k, "value": v} for k, v in headers.items()],
    }


@dataclass
class Folder:
    id: str
    display_name: str
    well_known: str | None = None


@dataclass
class Stored:
    immutable_id: str
    rest_id: str
    folder_id: str
    data: dict[str, Any]  # Graph's properties, without id and parentFolderId


@dataclass
class Store:
    owner: str
    root_id: str = field(default_factory=lambda: new_id("AAMkRoot"))
    folders: dict[str, Folder] = field(default_factory=dict)
    messages: dict[str, Stored] = field(default_factory=dict)  # by immutable id
    rest_ids: dict[str, str] = field(default_factory=dict)  # current REST id -> immutable id
    categories: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, display in WELL_KNOWN.items():
            folder = Folder(new_id("AAMkFolder"), display, name)
            self.folders[folder.id] = folder

    # Folders ----------------------------------------------------------------------------
    def folder(self, reference: str) -> Folder | None:
        """A folder by its id or its well-known name (any case, as Graph takes it)."""
        if reference in self.folders:
            return self.folders[reference]
        lowered = reference.lower()
        return next((f for f in self.folders.values() if f.well_known == lowered), None)

    def well_known(self, name: str) -> Folder:
        folder = self.folder(name)
        assert folder is not None
        return folder

    def add_folder(self, display_name: str) -> Folder:
        folder = Folder(new_id("AAMkFolder"), display_name)
        self.folders[folder.id] = folder
        return folder

    def folder_json(self, folder: Folder) -> dict[str, Any]:
        inside = [m for m in self.messages.values() if m.folder_id == folder.id]
        return {
            "id": folder.id,
            "displayName": folder.display_name,
            "parentFolderId": self.root_id,
            "childFolderCount": 0,
            "unreadItemCount": sum(1 for m in inside if not m.data.get("isRead")),
            "totalItemCount": len(inside),
            "isHidden": False,
        }

    # Messages ---------------------------------------------------------------------------
    def find(self, reference: str) -> Stored | None:
        stored = self.messages.get(reference)
        if stored is not None:
            return stored
        immutable = self.rest_ids.get(reference)
        return None if immutable is None else self.messages.get(immutable)

    def add(self, folder: Folder, data: dict[str, Any]) -> Stored:
        stored = Stored(new_id("AAkALgAA"), new_id("AAMkAGI2"), folder.id, data)
        self.messages[stored.immutable_id] = stored
        self.rest_ids[stored.rest_id] = stored.immutable_id
        data.setdefault("changeKey", secrets.token_urlsafe(12))
        return stored

    def move(self, stored: Stored, folder: Folder) -> None:
        stored.folder_id = folder.id
        del self.rest_ids[stored.rest_id]  # the old REST id is no longer found
        stored.rest_id = new_id("AAMkAGI2")
        self.rest_ids[stored.rest_id] = stored.immutable_id
        self.touch(stored)

    @staticmethod
    def touch(stored: Stored) -> None:
        stored.data["changeKey"] = secrets.token_urlsafe(12)
        stored.data["lastModifiedDateTime"] = now_text()

    def message_json(
        self, stored: Stored, immutable: bool, select: list[str] | None
    ) -> dict[str, Any]:
        full = {
            **stored.data,
            "id": stored.immutable_id if immutable else stored.rest_id,
            "parentFolderId": stored.folder_id,
        }
        body = full.get("body") or {}
        full["bodyPreview"] = str(body.get("content", ""))[:255]
        if select is None:
            chosen = [name for name in full if name not in SELECT_ONLY]
        else:
            chosen = ["id", *select]
        answer: dict[str, Any] = {"@odata.etag": f'W/"{stored.data["changeKey"]}"'}
        for name in chosen:
            if name in full:
                answer[name] = full[name]
        return answer

    def snapshot(self, stored: Stored) -> dict[str, Any]:
        folder = self.folders[stored.folder_id]
        return {
            **stored.data,
            "id": stored.immutable_id,
            "folder": folder.well_known or folder.display_name,
        }
