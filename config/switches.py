"""What an on/off variable may say; INNGEST_DEV, a switch or a URL; an Inngest key."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import SecretStr

FALSY = {"", "0", "false", "no", "off"}
TRUTHY = {"1", "true", "yes", "on"}
_SIGNING_KEY_PREFIX = re.compile(r"^signkey-\w+-")
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


def checked_inngest_dev(value: str) -> str:
    """INNGEST_DEV as given; ValueError unless it is a switch or a dev server's URL.
    Dev mode verifies no signature: only a deliberate value may turn it on."""
    if value.strip().lower() in FALSY | TRUTHY:
        return value
    url = urlsplit(value.strip())
    if url.scheme.lower() in ("http", "https") and url.netloc:
        return url._replace(scheme=url.scheme.lower()).geturl()
    raise ValueError(
        "must be 1 or true (a dev server, which verifies nothing), the dev server's "
        "http:// URL, or 0, false or unset for cloud mode"
    )


def check_signing_key(value: SecretStr | None) -> None:
    """ValueError unless an Inngest signing key is hex, after its optional prefix: the
    SDK hashes the key with bytes.fromhex and crashes on anything else."""
    if value is None:
        return
    if not _HEX.match(_SIGNING_KEY_PREFIX.sub("", value.get_secret_value())):
        raise ValueError(
            "must be an even-length hex string, optionally prefixed "
            "'signkey-<env>-' (generate one with `openssl rand -hex 32`)"
        )
