"""Changing many messages at once through JSON batching (POST /$batch, 20 requests to a
batch): label them (categories added to their own), mark them read, move them.

Each message is read first when it is labelled or moved (its categories and folder, 20 to
a batch), then one PATCH carries its new categories and read flag, then one move takes it
to the folder, created once if missing. A message that no longer exists, or is in Deleted
Items or Junk Email, is left alone and returned among the missing. Requests Graph
throttles inside a batch (429, or 503/504) stop the work: RetryLater with the longest
Retry-After they carry; what was done stays done, and doing it again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bridge.outcome import RetryLater
from tasks.mail.graph_folders import GraphFolders
from tasks.mail.graph_http import (
    BATCH_LIMIT,
    RETRY_SECONDS,
    GraphApi,
    SubRequest,
    SubResponse,
    path_of,
    raise_for,
)
from tasks.mail.port import MessageNotFound


def apply_many(
    api: GraphApi,
    folders: GraphFolders,
    message_ids: Sequence[str],
    *,
    mark_read: bool = False,
    labels: Sequence[str] = (),
    folder: str | None = None,
) -> list[str]:
    """Apply the changes to every message; the ids of those that no longer exist."""
    ids = list(dict.fromkeys(message_ids))
    missing: list[str] = []
    found: dict[str, dict[str, Any]] = {}
    if labels or folder is not None:
        read = _run(
            api,
            "read messages",
            ids,
            lambda i: SubRequest(
                "GET", path_of("me", "messages", i), {"$select": "id,parentFolderId,categories"}
            ),
            missing,
        )
        for message_id, answer in read.items():
            if folders.is_hidden(str(answer.body.get("parentFolderId", ""))):
                missing.append(message_id)
            else:
                found[message_id] = answer.body
        ids = [i for i in ids if i in found]
    changes: dict[str, dict[str, Any]] = {}
    for message_id in ids:
        change: dict[str, Any] = {"isRead": True} if mark_read else {}
        if labels:
            categories = [str(c) for c in found[message_id].get("categories") or []]
            added = [label for label in dict.fromkeys(labels) if label not in categories]
            if added:
                change["categories"] = [*categories, *added]
        if change:
            changes[message_id] = change
    _run(
        api,
        "change messages",
        list(changes),
        lambda i: SubRequest("PATCH", path_of("me", "messages", i), body=changes[i]),
        missing,
    )
    if folder is not None:
        target = folders.id_of(folder)
        # Not those gone since, nor those already there (moving twice is one move).
        moving = [i for i in ids if i not in missing and found[i].get("parentFolderId") != target]
        destination = folders.destination(folder, target) if moving else ""
        _run(
            api,
            f"move messages to {folder!r}",
            moving,
            lambda i: SubRequest(
                "POST", path_of("me", "messages", i, "move"), body={"destinationId": destination}
            ),
            missing,
        )
    return missing


def _run(
    api: GraphApi,
    operation: str,
    ids: list[str],
    request: Callable[[str], SubRequest],
    missing: list[str],
) -> dict[str, SubResponse]:
    """Each message's answer, a batch of 20 at a time; gone ones go to `missing`.
    Throttled requests end the work after their batch (RetryLater)."""
    answers: dict[str, SubResponse] = {}
    for start in range(0, len(ids), BATCH_LIMIT):
        chunk = ids[start : start + BATCH_LIMIT]
        waits: list[float] = []
        for message_id, answer in zip(
            chunk, api.batch(operation, [request(i) for i in chunk]), strict=True
        ):
            try:
                raise_for(operation, answer.status, answer.headers, answer.body, api.who)
            except MessageNotFound:
                missing.append(message_id)
            except RetryLater as throttled:
                waits.append(throttled.retry_after)
            else:
                answers[message_id] = answer
        if waits:
            raise RetryLater(
                f"{api.who}: {operation}: Microsoft Graph throttled {len(waits)} of "
                f"{len(chunk)} requests in a batch",
                max(waits) if waits else RETRY_SECONDS,
            )
    return answers
