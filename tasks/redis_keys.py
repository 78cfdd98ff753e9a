"""The inbox app's own Redis keys, each under REDIS_KEY_PREFIX via bridge.store.redis_store.key."""

from __future__ import annotations

# + account id: hash of sender email -> "queued" | "done" for sender categorization
# (tasks/jobs/categorize_progress.py), with a TTL.
CATEGORIZE_PROGRESS = "jobbridge:categorize:progress:"
# Inbox cleaning (tasks/jobs/clean_progress.py), + account:job:thread -> hash of the
# thread's decision and status (applying, completed) for progress and the UI, with a TTL.
CLEAN_THREAD = "jobbridge:clean:thread:"
