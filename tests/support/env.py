"""The test run's fixed secrets and URLs: realistic shapes, never real credentials."""

from __future__ import annotations

INNGEST_SIGNING_KEY = "signkey-test-" + "ab12" * 16  # 32 bytes of hex after the prefix
INNGEST_EVENT_KEY = "test-event-key"
INNGEST_API = "http://inngest.test:8288"
# Where Inngest calls the app; the web fixture replaces it with the server's own address.
INNGEST_SERVE_ORIGIN = "https://jobs.example.test"
QSTASH_TOKEN = "qstash-test-token"
QSTASH_API = "https://qstash.test"
QSTASH_CURRENT_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
QSTASH_NEXT_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
# Deliberately not the test server's address: QStash signs the public URL.
WEBHOOK_URL = "https://jobs.example.test"
INTERNAL_API_KEY = "internal-test-key-0123456789"
CRON_SECRET = "cron-test-secret-0123456789"

INNGEST_ENV = {
    "INNGEST_SIGNING_KEY": INNGEST_SIGNING_KEY,
    "INNGEST_EVENT_KEY": INNGEST_EVENT_KEY,
    "INNGEST_BASE_URL": INNGEST_API,
    "INNGEST_SERVE_ORIGIN": INNGEST_SERVE_ORIGIN,
}
QSTASH_ENV = {
    "QSTASH_TOKEN": QSTASH_TOKEN,
    "QSTASH_URL": QSTASH_API,
    "QSTASH_CURRENT_SIGNING_KEY": QSTASH_CURRENT_KEY,
    "QSTASH_NEXT_SIGNING_KEY": QSTASH_NEXT_KEY,
    "WEBHOOK_URL": WEBHOOK_URL,
}
