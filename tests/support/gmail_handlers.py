"""The Gmail double's methods, by discovery id: each takes the store, the path
parameters, the query parameters (already checked against the discovery document) and
the JSON body, and answers Gmail's documented resource or raises GmailRefusal."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.gmail_store import (
    GmailRefusal,
    Store,
    attachment,
    resource,
    snippet,
    valid_id,
)

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
    404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
    503: "UNAVAILABLE",
}  # fmt: skip
MAX_RESULTS = 500
BATCH_LIMIT = 1000


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # JSON, or None for an empty answer
    headers: dict[str, str] = field(default_factory=dict)


Params = dict[str, list[str]]
Handler = Callable[[Store, dict[str, str], Params, Any], Answer]


def _one(params: Params, name: str, default: str | None = None) -> str | None:
    values = params.get(name)
    return values[0] if values else default


def _max_results(params: Params) -> int:
    number = int(_one(params, "maxResults", "100") or 100)
    if not 1 <= number <= MAX_RESULTS:
        raise GmailRefusal(400, f"Invalid maxResults: must be 1 to {MAX_RESULTS}")
    return number


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise GmailRefusal(400, "Request body required")
    return body


def labels_list(store: Store, path: dict[str, str], params: Params, body: Any) -> Answer:
    return Answer(200, {"labels": [dict(label) for label in store.labels.values()]})


def labels_create(store: Store, path: dict[str, str], params: Params, body: Any) -> Answer:
    return Answer(200, store.create_label(_object(body)))


def messages_get(store: Store, path: dict[str, str], params: Params, body: Any) -> Answer:
    message = store.get(path["id"])
    form = _one(params, "format", "full") or "full"
    return Answer(200, resource(message, form, params.get("metadataHeaders", [])))


def messages_list(store: Store, path: dict[str, str], params: Params, body: Any) -> Answer:
    found = store.matching(
        params.get("labelIds", []),
        _one(params, "q", "") or "",
        include_spam_trash=_one(params, "includeSpamTrash") == "true",
    )
    keyed = {message.id: message.internal_date for message in found}
    ids, token = store.page(keyed, _one(params, "pageToken"), _max_results(params))
    answer: dict[str, Any] = {"resultSizeEstimate": len(found)}
    if ids:
        answer["messages"] = [{"id": i, "threadId": store.messages[i].thread_id} for i in ids]
    if token:
        answer["nextPageToken"] = token
    return Answer(200, answer)


def messages_modify(store: Store, path: dict[str, str], params: Params, body: Any) -> Answer:
    request = _object(body)
    message = store.get(path["id"])
    store.modify(message, request.get("addLabelIds", []), request.get("removeLabelIds", []))
    return Answer(
        200, {"id": message.id, "threadId": message.thread_id, "labelIds": message.label_ids}
    )


def messages_batch_modify(store: Store, path: dict[str, str], params: Params, body: Any) -> Answer:
    request = _object(body)
    ids = [valid_id(i) for i in request.get("ids", [])]
    if not ids:
        raise GmailRefusal(400, "ids: at least one message id required")
    if len(ids) > BATCH_LIMIT:
        raise GmailRefusal(400, f"Too many ids: {len(ids)} (at most {BATCH_LIMIT})")
    for message_id in ids:  # ids Gmail does not know are passed over
        message = store.messages.get(message_id)
        if message is not None:
            store.modify(message, request.get("addLabelIds", []), request.get("removeLabelIds", []))
    return Answer(204, None)


def messages_send(store: Store, path: dict[str, str], params: Params, body: Any) -> Answer:
    request = _object(body)
    raw = request.get("raw")
    if not raw:
        raise GmailRefusal(
            400, "'raw' RFC822 payload message string or uploading message via /upload/* URL "
            "required",
        )  # fmt: skip
    try:
        content = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise GmailRefusal(400, "Invalid value for ByteString: raw") from None
    sent = store.send(content, request.get("threadId"))
    return Answer(200, {"id": sent.id, "threadId": sent.thread_id, "labelIds": sent.label_ids})


def attachments_get(store: Store, path: dict[str, str], params: Params, body: Any) -> Answer:
    content = attachment(store.get(path["messageId"]), path["id"])
    data = base64.urlsafe_b64encode(content).decode("ascii")
    return Answer(200, {"size": len(content), "data": data})


def threads_get(store: Store, path: dict[str, str], params: Params, body: Any) -> Answer:
    members = store.thread(path["id"])
    form = _one(params, "format", "full") or "full"
    headers = params.get("metadataHeaders", [])
    return Answer(
        200,
        {
            "id": path["id"],
            "historyId": str(max(m.history_id for m in members)),
            "messages": [resource(m, form, headers) for m in members],
        },
    )


def threads_list(store: Store, path: dict[str, str], params: Params, body: Any) -> Answer:
    found = store.matching(
        params.get("labelIds", []),
        _one(params, "q", "") or "",
        include_spam_trash=_one(params, "includeSpamTrash") == "true",
    )
    newest: dict[str, Any] = {}  # thread -> its newest matching message
    for message in found:
        current = newest.get(message.thread_id)
        if current is None or (message.internal_date, message.id) > (
            current.internal_date,
            current.id,
        ):
            newest[message.thread_id] = message
    keyed = {thread: message.internal_date for thread, message in newest.items()}
    ids, token = store.page(keyed, _one(params, "pageToken"), _max_results(params))
    answer: dict[str, Any] = {"resultSizeEstimate": len(newest)}
    if ids:
        answer["threads"] = [
            {
                "id": thread,
                "snippet": snippet(newest[thread].parsed),
                "historyId": str(max(m.history_id for m in store.thread(thread))),
            }
            for thread in ids
        ]
    if token:
        answer["nextPageToken"] = token
    return Answer(200, answer)


HANDLERS: dict[str, Handler] = {
    "gmail.users.labels.list": labels_list,
    "gmail.users.labels.create": labels_create,
    "gmail.users.messages.get": messages_get,
    "gmail.users.messages.list": messages_list,
    "gmail.users.messages.modify": messages_modify,
    "gmail.users.messages.batchModify": messages_batch_modify,
    "gmail.users.messages.send": messages_send,
    "gmail.users.messages.attachments.get": attachments_get,
    "gmail.users.threads.get": threads_get,
    "gmail.users.threads.list": threads_list,
}


def error_answer(
    status: int, message: str, reason: str, headers: dict[str, str] | None = None
) -> Answer:
    """An error in Gmail's (v1) shape."""
    domain = "usageLimits" if reason in ("rateLimitExceeded", "userRateLimitExceeded") else "global"
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
            "status": _STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }
    extra = dict(headers or {})
    if status == 401:
        extra["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
    return Answer(status, body, extra)


def http_handler(
    answer_of: Callable[[str, str, Any, bytes], Answer],
) -> type[BaseHTTPRequestHandler]:
    """The request handler class of a server whose answers `answer_of` gives."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httplib2 expects of Google

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            answer = answer_of(self.command, self.path, self.headers, body)
            content = b"" if answer.body is None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            if answer.body is not None:
                self.send_header("Content-Type", "application/json; charset=UTF-8")
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request log is `double.requests`

    return Handler
