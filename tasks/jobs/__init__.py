"""Every job of docs/JOBS.md, each declared once with @job. Importing this registers them."""

from __future__ import annotations

from tasks.jobs import bulk_process, categorize, clean, digest

__all__ = ["bulk_process", "categorize", "clean", "digest"]
