"""Direct HTTP's wire facts: the caller's key and the delivery headers it sends."""

from __future__ import annotations

import hashlib
import uuid

from bridge.store.columns import EXTERNAL_LENGTH

API_KEY_HEADER = "x-api-key"  # must equal INTERNAL_API_KEY
# The route uses these as the delivery's id and attempt, like QStash's message headers.
DELIVERY_ID_HEADER = "x-jobbridge-delivery-id"
ATTEMPT_HEADER = "x-jobbridge-attempt"
# How many times the direct-HTTP publisher posts a job (its attempt header counts from 0),
# so the route knows the last attempt: ATTEMPTS - 1.
ATTEMPTS = 3


def delivery_id_for(dedup_id: str | None) -> str:
    """The delivery id sent for a job: its dedup id, or a new one. A dedup id longer than
    a route accepts (EXTERNAL_LENGTH, what the ledger holds) is sent as its beginning and
    a digest of the whole, so that the same dedup id is always the same delivery."""
    if dedup_id is None:
        return uuid.uuid4().hex
    if len(dedup_id) <= EXTERNAL_LENGTH:
        return dedup_id
    digest = hashlib.sha256(dedup_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{dedup_id[: EXTERNAL_LENGTH - len(digest) - 1]}-{digest}"
