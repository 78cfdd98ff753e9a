"""QStash's wire facts this code relies on (docs/PROTOCOLS.md)."""

from __future__ import annotations

SIGNATURE_HEADER = "upstash-signature"  # a JWT signed with the current or next signing key
MESSAGE_ID_HEADER = "upstash-message-id"  # stable across a message's retries
RETRIED_HEADER = "upstash-retried"  # how often this message was retried before
