"""The Graph double's mail endpoints: each documented call the adapter makes, with the
query options and body properties Graph documents for it and the answers it documents
(collections as {"@odata.context", "value", "@odata.nextLink"}, errors as {"error":
{"code", "message", "innerError"}}). Anything undocumented is a 400 recorded in
`violations`.

Paging is what Graph does for messages: an offset, here carried in a $skiptoken, into
the result as it is when the next page is asked for.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from tests.support.graph_double_checks import (
    Answer,
    Call,
    Refused,
    bad,
    check_message,
    check_object,
    error,
    not_found,
    number,
    pick,
    selected,
    skip_of,
)
from tests.support.graph_double_odata import (
    FOLDER_FILTERABLE,
    MESSAGE_FILTERABLE,
    parse_filter,
    parse_orderby,
)
from tests.support.graph_double_store import (
    FOLDER_PROPERTIES,
    MESSAGE_PROPERTIES,
    Folder,
    Store,
    Stored,
    now_text,
)

LIST_OPTIONS = frozenset({"$filter", "$orderby", "$top", "$select", "$skip", "$skiptoken"})
# PATCH /me/messages/{id}: what Graph lets change on any message, and on drafts only.
UPDATABLE = frozenset(
    {
        "categories",
        "isRead",
        "flag",
        "importance",
        "inferenceClassification",
        "isDeliveryReceiptRequested",
        "isReadReceiptRequested",
    }
)
DRAFT_UPDATABLE = UPDATABLE | frozenset(
    {
        "subject",
        "body",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "from",
        "sender",
        "internetMessageId",
    }
)
# A new message (sendMail, createReply's `message`): writable properties and x- headers.
WRITABLE = DRAFT_UPDATABLE | frozenset({"internetMessageHeaders", "attachments"})


class GraphEndpoints:
    def __init__(self, store: Store, base_url: str) -> None:
        self.store, self.base_url = store, base_url
        self.outbox: list[dict[str, Any]] = []  # every message sent, as Graph stored it

    def handle(self, call: Call) -> Answer:
        s = call.segments
        routes: list[tuple[bool, Any, frozenset[str]]] = [
            (
                s == ["me", "mailFolders"] and call.method == "GET",
                self._folders,
                frozenset({"$filter", "$select", "$top", "$skip"}),
            ),
            (s == ["me", "mailFolders"] and call.method == "POST", self._new_folder, frozenset()),
            (
                len(s) == 3 and s[:2] == ["me", "mailFolders"] and call.method == "GET",
                self._folder,
                frozenset({"$select"}),
            ),
            (
                len(s) == 4
                and s[:2] == ["me", "mailFolders"]
                and s[3] == "messages"
                and call.method == "GET",
                self._list,
                LIST_OPTIONS,
            ),
            (s == ["me", "messages"] and call.method == "GET", self._list, LIST_OPTIONS),
            (
                len(s) == 3 and s[:2] == ["me", "messages"] and call.method == "GET",
                self._get,
                frozenset({"$select"}),
            ),
            (
                len(s) == 3 and s[:2] == ["me", "messages"] and call.method == "PATCH",
                self._patch,
                frozenset(),
            ),
            (
                len(s) == 4
                and s[:2] == ["me", "messages"]
                and call.method == "POST"
                and s[3] in ("move", "createReply", "send"),
                self._action,
                frozenset(),
            ),
            (s == ["me", "sendMail"] and call.method == "POST", self._send_mail, frozenset()),
            (
                s == ["me", "outlook", "masterCategories"] and call.method == "GET",
                self._categories,
                frozenset({"$select", "$top"}),
            ),
        ]
        for matches, handler, options in routes:
            if matches:
                unknown = set(call.query) - options
                if unknown:
                    raise bad(f"Query option(s) {sorted(unknown)} not allowed for {call.route}")
                answer: Answer = handler(call)
                return answer
        raise bad(f"No such Graph call: {call.route}", "UnknownRequest")

    # Folders ----------------------------------------------------------------------------
    def _folder_ref(self, reference: str) -> Folder:
        folder = self.store.folder(reference)
        if folder is None:
            raise not_found()
        return folder

    def _folders(self, call: Call) -> Answer:
        fields = selected(call.query.get("$select"), FOLDER_PROPERTIES)
        rule = (
            parse_filter(call.query["$filter"], FOLDER_FILTERABLE)
            if "$filter" in call.query
            else None
        )
        value = []
        for folder in self.store.folders.values():
            data = self.store.folder_json(folder)
            if rule is None or rule(data):
                value.append(pick(data, fields))
        return Answer(200, {"@odata.context": self._context("mailFolders"), "value": value})

    def _folder(self, call: Call) -> Answer:
        folder = self._folder_ref(call.segments[2])
        data = self.store.folder_json(folder)
        answer = pick(data, selected(call.query.get("$select"), FOLDER_PROPERTIES))
        return Answer(200, {"@odata.context": self._context("mailFolders/$entity"), **answer})

    def _new_folder(self, call: Call) -> Answer:
        body = check_object(
            call.body, required={"displayName"}, allowed={"displayName", "isHidden"}
        )
        name = body["displayName"]
        if not isinstance(name, str) or not name:
            raise bad("displayName must be a non-empty string")
        if any(f.display_name.lower() == name.lower() for f in self.store.folders.values()):
            raise Refused(
                error(409, "ErrorFolderExists", "A folder with the specified name already exists."),
                violation=False,
            )
        folder = self.store.add_folder(name)
        return Answer(201, self.store.folder_json(folder))

    # Messages ---------------------------------------------------------------------------
    def _message_ref(self, reference: str) -> Stored:
        stored = self.store.find(reference)
        if stored is None:
            raise not_found()
        return stored

    def _list(self, call: Call) -> Answer:
        folder = self._folder_ref(call.segments[2]) if len(call.segments) == 4 else None
        q = call.query
        rule = parse_filter(q["$filter"], MESSAGE_FILTERABLE) if "$filter" in q else None
        order = (
            parse_orderby(q["$orderby"], rule) if "$orderby" in q else ("receivedDateTime", True)
        )
        fields = selected(q.get("$select"), MESSAGE_PROPERTIES)
        top = number(q.get("$top", "10"), 1, 1000, "$top")
        offset = skip_of(q)
        items = [
            m
            for m in self.store.messages.values()
            if (folder is None or m.folder_id == folder.id) and (rule is None or rule(m.data))
        ]
        name, descending = order
        items.sort(key=lambda m: (str(m.data.get(name, "")), m.immutable_id), reverse=descending)
        page = items[offset : offset + top]
        answer: dict[str, Any] = {
            "@odata.context": self._context("messages"),
            "value": [self.store.message_json(m, call.immutable, fields) for m in page],
        }
        if offset + top < len(items):
            rest = {k: v for k, v in q.items() if k not in ("$skip", "$skiptoken")}
            rest["$skiptoken"] = base64.urlsafe_b64encode(f"skip:{offset + top}".encode()).decode()
            path = "/".join(quote(part, safe="") for part in call.segments)
            answer["@odata.nextLink"] = f"{self.base_url}/{path}?{urlencode(rest, quote_via=quote)}"
        return Answer(200, answer)

    def _get(self, call: Call) -> Answer:
        stored = self._message_ref(call.segments[2])
        fields = selected(call.query.get("$select"), MESSAGE_PROPERTIES)
        answer = self.store.message_json(stored, call.immutable, fields)
        return Answer(200, {"@odata.context": self._context("messages/$entity"), **answer})

    def _patch(self, call: Call) -> Answer:
        stored = self._message_ref(call.segments[2])
        allowed = DRAFT_UPDATABLE if stored.data.get("isDraft") else UPDATABLE
        body = check_object(call.body, required=set(), allowed=set(allowed))
        check_message(body)
        if "categories" in body and not all(isinstance(c, str) for c in body["categories"]):
            raise bad("categories must be strings")
        stored.data.update(body)
        self.store.touch(stored)
        return Answer(200, self.store.message_json(stored, call.immutable, None))

    def _action(self, call: Call) -> Answer:
        stored = self._message_ref(call.segments[2])
        action = call.segments[3]
        if action == "move":
            body = check_object(call.body, required={"destinationId"}, allowed={"destinationId"})
            target = self._folder_ref(str(body["destinationId"]))
            self.store.move(stored, target)
            return Answer(201, self.store.message_json(stored, call.immutable, None))
        if action == "createReply":
            body = check_object(call.body or {}, required=set(), allowed={"message", "comment"})
            message = check_object(body.get("message") or {}, required=set(), allowed=set(WRITABLE))
            if "comment" in body and "body" in message:
                raise bad("Specify either comment or the message's body, not both")
            check_message(message)
            return Answer(201, self._reply(stored, message, call.immutable))
        if call.body not in (None, {}):  # send takes no body
            raise bad("send takes no request body")
        if not stored.data.get("isDraft"):
            raise bad("Only a draft can be sent", "ErrorInvalidOperation")
        self._deliver(stored)
        return Answer(202)

    def _reply(self, original: Stored, message: dict[str, Any], immutable: bool) -> dict[str, Any]:
        data = original.data
        subject = str(data.get("subject", ""))
        draft: dict[str, Any] = {
            "subject": subject if subject.lower().startswith("re:") else f"RE: {subject}",
            "body": {"contentType": "html", "content": f"<blockquote>{subject}</blockquote>"},
            "from": {"emailAddress": {"address": self.store.owner}},
            "toRecipients": data.get("replyTo") or [data.get("from")],
            "ccRecipients": [],
            "bccRecipients": [],
            "categories": [],
            "conversationId": data.get("conversationId"),
            "isDraft": True,
            "isRead": True,
            "internetMessageId": f"<{uuid.uuid4().hex}@double.example>",
            "createdDateTime": now_text(),
            "hasAttachments": False,
            "flag": {"flagStatus": "notFlagged"},
        }
        draft.update(message)
        stored = self.store.add(self.store.well_known("drafts"), draft)
        return self.store.message_json(stored, immutable, None)

    def _send_mail(self, call: Call) -> Answer:
        body = check_object(call.body, required={"message"}, allowed={"message", "saveToSentItems"})
        message = check_object(body["message"], required=set(), allowed=set(WRITABLE))
        check_message(message)
        data: dict[str, Any] = {
            "from": {"emailAddress": {"address": self.store.owner}},
            "categories": [],
            "conversationId": "AAQk" + uuid.uuid4().hex,
            "isDraft": False,
            "isRead": True,
            "internetMessageId": f"<{uuid.uuid4().hex}@double.example>",
            "hasAttachments": False,
            "flag": {"flagStatus": "notFlagged"},
            **message,
        }
        if body.get("saveToSentItems", True):
            self._deliver(self.store.add(self.store.well_known("sentitems"), data))
        else:
            self.outbox.append(dict(data))
        return Answer(202)

    def _deliver(self, stored: Stored) -> None:
        moment = now_text()
        stored.data.update(isDraft=False, sentDateTime=moment, receivedDateTime=moment)
        self.store.move(stored, self.store.well_known("sentitems"))
        self.outbox.append(self.store.snapshot(stored))

    def _categories(self, call: Call) -> Answer:
        return Answer(
            200,
            {
                "@odata.context": self._context("outlook/masterCategories"),
                "value": [dict(c) for c in self.store.categories],
            },
        )

    def _context(self, what: str) -> str:
        return f"{self.base_url}/$metadata#users('{quote(self.store.owner)}')/{what}"


def run_batch(outer: Call, dispatch: Callable[[Call], Answer]) -> Answer:
    """POST /$batch: each request dispatched as a call of its own (faults, log and
    violations included), answered in any order, as Graph may."""
    body = outer.body
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or set(body) != {"requests"}:
        raise bad("A batch is {requests: [...]}")
    if not 1 <= len(requests) <= 20:
        raise bad("A batch holds 1 to 20 requests")
    ids = [r.get("id") if isinstance(r, dict) else None for r in requests]
    if len(set(ids)) != len(ids) or not all(isinstance(i, str) and i for i in ids):
        raise bad("Batch request ids must be unique strings")
    return Answer(200, {"responses": [_sub(item, dispatch) for item in requests][::-1]})


def _sub(item: dict[str, Any], dispatch: Callable[[Call], Answer]) -> dict[str, Any]:
    headers = item.get("headers") or {}
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    url = urlsplit(str(item.get("url", "")))
    problem = None
    if set(item) - {"id", "method", "url", "headers", "body", "dependsOn"}:
        problem = "unknown batch request properties"
    elif not url.path.startswith("/") or url.scheme or url.path.startswith("/v1.0/"):
        problem = f"url must be relative to the version root: {item.get('url')!r}"
    elif "body" in item and "application/json" not in lowered.get("content-type", ""):
        problem = "a batch request with a body needs Content-Type: application/json"
    call = Call(
        str(item.get("method", "")).upper(),
        [unquote(part) for part in url.path[1:].split("/")],
        dict(parse_qsl(url.query, keep_blank_values=True)),
        item.get("body"),
        'IdType="ImmutableId"' in lowered.get("prefer", ""),
        batched=True,
        problem=problem,
    )
    answer = dispatch(call)
    response: dict[str, Any] = {
        "id": item["id"],
        "status": answer.status,
        "headers": {"Content-Type": "application/json", **answer.headers},
    }
    if answer.body is not None:
        response["body"] = answer.body
    return response
