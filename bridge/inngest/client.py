"""The Inngest client built from Settings (publisher and receiver share it)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import inngest
from inngest._internal import net, server_lib

from config import Settings

# The SDK's own defaults when no URL is given (docs/PROTOCOLS.md, "Client and modes"):
# the dev server on loopback (INNGEST_DEV=1), else Inngest Cloud's event API and API.
DEV_SERVER_ORIGIN = "http://127.0.0.1:8288"
CLOUD_EVENT_API_ORIGIN = "https://inn.gs"
CLOUD_API_ORIGIN = "https://api.inngest.com"


def inngest_origin(settings: Settings) -> str | None:
    """INNGEST_BASE_URL, else INNGEST_DEV when it is a URL, else None: the SDK's default."""
    if settings.inngest_base_url:
        return settings.inngest_base_url
    dev = settings.inngest_dev or ""
    if settings.inngest_is_dev and dev.startswith(("http://", "https://")):
        return dev.rstrip("/")
    return None


def event_api_origin(settings: Settings) -> str:
    """Where the SDK sends events: `inngest_origin`, else its default for the mode."""
    default = DEV_SERVER_ORIGIN if settings.inngest_is_dev else CLOUD_EVENT_API_ORIGIN
    return inngest_origin(settings) or default


def api_origin(settings: Settings) -> str:
    """Where the SDK calls Inngest's API (sync, runs): `inngest_origin`, else its
    default for the mode."""
    return inngest_origin(settings) or (
        DEV_SERVER_ORIGIN if settings.inngest_is_dev else CLOUD_API_ORIGIN
    )


def inngest_origin_variable(settings: Settings) -> str:
    """The variable that chose the server's URL: INNGEST_BASE_URL when set, else
    INNGEST_DEV in dev mode (its URL, or the dev server's default), else
    INNGEST_BASE_URL (unset: Inngest Cloud)."""
    from_dev = not settings.inngest_base_url and settings.inngest_is_dev
    return "INNGEST_DEV" if from_dev else "INNGEST_BASE_URL"


class RefusalsAsWarnings(logging.Filter):
    """The SDK logs each call it refuses for its signature at ERROR; anyone can send
    one, so that is the caller's fault, not the app's: WARNING (a wrong signing key
    still shows, without an error alert per request a stranger sends)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno == logging.ERROR
            and isinstance(record.msg, str)
            and record.msg.startswith("unauthorized: ")
        ):
            record.levelno, record.levelname = (
                logging.WARNING,
                logging.getLevelName(logging.WARNING),
            )
        return True


SDK_LOG = logging.getLogger("jobbridge.inngest")
FALLBACK_VARIABLE = "INNGEST_SIGNING_KEY_FALLBACK"
SDK_LOG.addFilter(RefusalsAsWarnings())


def make_inngest_client(settings: Settings) -> inngest.Inngest:
    # The SDK reads the fallback key from the process environment only, so it is set
    # there to exactly what Settings say: a value from .env would otherwise be ignored
    # (key rotation would break), and a blank one (compose's `${VAR:-}`), which Settings
    # take for none, would be the SDK's fallback key: an empty one, anyone's to sign with.
    fallback = settings.inngest_signing_key_fallback
    if fallback is not None:
        os.environ[FALLBACK_VARIABLE] = fallback.get_secret_value()
    else:
        os.environ.pop(FALLBACK_VARIABLE, None)
    origin = inngest_origin(settings)
    event_key = settings.inngest_event_key
    signing_key = settings.inngest_signing_key
    return inngest.Inngest(
        app_id=settings.inngest_app_id,
        api_base_url=origin,
        event_api_base_url=origin,
        event_key=event_key.get_secret_value() if event_key else None,
        signing_key=signing_key.get_secret_value() if signing_key else None,
        is_production=not settings.inngest_is_dev,
        logger=SDK_LOG,
    )


def signing_keys(settings: Settings) -> list[str]:
    """The keys a call's signature may verify with, in the SDK's order: the current
    one, then the fallback."""
    keys = (settings.inngest_signing_key, settings.inngest_signing_key_fallback)
    return [key.get_secret_value() for key in keys if key is not None]


def signature_check(settings: Settings) -> Callable[[bytes, str], str | None]:
    """The signing key a body and its X-Inngest-Signature verify with, None when they
    do not, exactly as the SDK decides (current key, then the fallback), for checks made
    outside the SDK."""
    key = settings.inngest_signing_key
    fallback = settings.inngest_signing_key_fallback
    current = key.get_secret_value() if key is not None else None
    previous = fallback.get_secret_value() if fallback is not None else None

    def verifies(body: bytes, signature: str) -> str | None:
        verdict = net.validate_request_sig(
            body=body,
            headers={"x-inngest-signature": signature},
            mode=server_lib.ServerKind.CLOUD,
            signing_key=current,
            signing_key_fallback=previous,
        )
        return verdict if isinstance(verdict, str) else None

    return verifies
