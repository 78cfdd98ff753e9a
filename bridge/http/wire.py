"""Direct HTTP's wire facts: the caller's key and the delivery headers it sends."""

from __future__ import annotations

API_KEY_HEADER = "x-api-key"  # must equal INTERNAL_API_KEY
# The route uses these as the delivery's id and attempt, like QStash's message headers.
DELIVERY_ID_HEADER = "x-jobbridge-delivery-id"
ATTEMPT_HEADER = "x-jobbridge-attempt"
# How many times the direct-HTTP publisher posts a job (its attempt header counts from 0),
# so the route knows the last attempt: ATTEMPTS - 1.
ATTEMPTS = 3
