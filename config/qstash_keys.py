"""The QStash variables a deployment holds while QStash is in use, in the order the
migration removes them (docs/MIGRATION.md: phase 4 the token, phase 5 the rest), and
where a rollback to QStash finds them (Settings.missing_qstash_variables names those it
must put back)."""

from __future__ import annotations

# What the migration removes from QStash's side, in the order it removes them (phase 4:
# the token; phase 5: the rest), and what a rollback must put back.
QSTASH_PUBLISHES = ("QSTASH_TOKEN",)
QSTASH_RECEIVES = ("QSTASH_CURRENT_SIGNING_KEY", "QSTASH_NEXT_SIGNING_KEY", "WEBHOOK_URL")
WHERE_FROM = (
    "the token and both signing keys from the Upstash console (QStash, Request builder "
    "and Signing keys); WEBHOOK_URL is this app's public base URL, as before"
)
