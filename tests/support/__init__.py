"""What the tests share: doubles of the SaaS servers, processes, waits and fixtures' helpers."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
