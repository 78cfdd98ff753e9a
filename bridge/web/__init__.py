"""`uvicorn bridge.web:app` serves every job for every provider."""

from __future__ import annotations

from bridge.web.app import create_app
from config.settings import get_settings_or_exit

# A bad environment ends `uvicorn bridge.web:app` with the plain message (each variable
# and its fix) and exit status 2, as the CLI and `celery -A tasks` do: no traceback.
app = create_app(get_settings_or_exit())

__all__ = ["app", "create_app"]
