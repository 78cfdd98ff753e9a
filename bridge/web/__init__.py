"""`uvicorn bridge.web:app` serves every job for every provider."""

from __future__ import annotations

from bridge.web.app import create_app

app = create_app()

__all__ = ["app", "create_app"]
