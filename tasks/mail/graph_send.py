"""Sending from a Graph mailbox, once per idempotency key.

The message's internetMessageId is the Message-ID `composing.message_id_for` derives
from the key; Graph takes it when a message is created (it is updatable while the
message is a draft, and sendMail creates the message it sends). Before sending, the
mailbox is searched for a message with that internetMessageId: a sent one (in Sent
Items, or wherever the user moved it) means the mail went out, and its id is returned
without sending; a draft of ours means an earlier run created a reply and stopped before
sending it, and that draft is sent rather than a second one made.

A new mail goes out with POST /me/sendMail (saveToSentItems). sendMail answers 202 with
no id, so the Sent Items copy is looked up by its internetMessageId; Exchange files it
shortly after sending, and until it has, the id returned is the Message-ID itself.

A reply (in_reply_to, a Message-ID) finds the original by internetMessageId, creates the
reply draft with POST /me/messages/{id}/createReply (Graph threads it: same
conversationId, In-Reply-To and References), with our body, recipients and
internetMessageId, then sends it with POST /me/messages/{draftId}/send. The draft's
immutable id is the id of the sent copy. An original that is not in the mailbox makes the
reply a new mail (sendMail cannot set In-Reply-To: Graph takes only x- headers).
"""

from __future__ import annotations

from typing import Any

from bridge.outcome import PermanentError, RetryLater
from tasks.mail.composing import message_id_for
from tasks.mail.graph_folders import GraphFolders, odata_text
from tasks.mail.graph_http import GraphApi, path_of
from tasks.mail.graph_messages import outgoing
from tasks.mail.port import OutgoingMail


def send(api: GraphApi, folders: GraphFolders, mail: OutgoingMail, address: str) -> str:
    header = message_id_for(mail)
    if mail.idempotency_key:
        earlier = _with_header(api, header)
        sent = [m for m in earlier if not m.get("isDraft")]
        if sent:
            return str(sent[0]["id"])  # sent before
        if earlier:  # our reply draft, created by a run that stopped before sending it
            return _send_draft(api, str(earlier[0]["id"]))
    message = outgoing(mail, header, address)
    original = _original(api, folders, mail.in_reply_to) if mail.in_reply_to else None
    if original is None:
        api.call(
            "send a message",
            "POST",
            "me/sendMail",
            body={"message": message, "saveToSentItems": True},
        )
        try:  # the Sent Items copy's id, if Exchange has filed it yet; the mail went out
            filed = [m for m in _with_header(api, header) if not m.get("isDraft")]
        except (PermanentError, RetryLater):
            return header
        return str(filed[0]["id"]) if filed else header
    draft = api.call(
        "create a reply",
        "POST",
        path_of("me", "messages", original, "createReply"),
        body={"message": message},
    )
    return _send_draft(api, str(draft["id"]))


def _send_draft(api: GraphApi, draft_id: str) -> str:
    api.call("send a reply", "POST", path_of("me", "messages", draft_id, "send"))
    return draft_id


def _with_header(api: GraphApi, header: str) -> list[dict[str, Any]]:
    """The mailbox's messages with this internetMessageId (Deleted Items and Junk count:
    a deleted sent copy was still sent)."""
    answer = api.call(
        "look for a sent message",
        "GET",
        "me/messages",
        params={
            "$filter": f"internetMessageId eq {odata_text(header)}",
            "$select": "id,isDraft,parentFolderId",
        },
    )
    return [m for m in answer.get("value", []) if isinstance(m, dict) and m.get("id")]


def _original(api: GraphApi, folders: GraphFolders, message_id: str) -> str | None:
    """The Graph id of the message a reply answers, by its Message-ID."""
    for message in _with_header(api, message_id):
        if not message.get("isDraft") and not folders.is_hidden(
            str(message.get("parentFolderId", ""))
        ):
            return str(message["id"])
    return None
