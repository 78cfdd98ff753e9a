"""The providers by name: what JOB_PROVIDER and receipts say."""

from __future__ import annotations

from enum import StrEnum


class Provider(StrEnum):
    INNGEST = "inngest"
    QSTASH = "qstash"
    CELERY = "celery"
    HTTP = "http"
