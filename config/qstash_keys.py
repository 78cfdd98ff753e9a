"""The QStash variables a deployment holds while QStash is in use, in the order the
migration removes them (docs/MIGRATION.md: phase 4 the token, phase 5 the rest), and
where a rollback to QStash finds them; what Settings require of them together."""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr

# What the migration removes from QStash's side, in the order it removes them (phase 4:
# the token; phase 5: the rest), and what a rollback must put back.
QSTASH_PUBLISHES = ("QSTASH_TOKEN",)
QSTASH_RECEIVES = ("QSTASH_CURRENT_SIGNING_KEY", "QSTASH_NEXT_SIGNING_KEY", "WEBHOOK_URL")
WHERE_FROM = (
    "the token and both signing keys from the Upstash console (QStash, Request builder "
    "and Signing keys); WEBHOOK_URL is this app's public base URL, as before"
)


class QStashSettings(Protocol):
    """The part of Settings read here (config.settings imports this module)."""

    qstash_token: SecretStr | None
    qstash_current_signing_key: SecretStr | None
    qstash_next_signing_key: SecretStr | None
    webhook_url: str | None


def missing_qstash_variables(settings: QStashSettings) -> list[str]:
    """The QStash variables unset, in the order a rollback puts them back."""
    values = {
        "QSTASH_TOKEN": settings.qstash_token,
        "QSTASH_CURRENT_SIGNING_KEY": settings.qstash_current_signing_key,
        "QSTASH_NEXT_SIGNING_KEY": settings.qstash_next_signing_key,
        "WEBHOOK_URL": settings.webhook_url,
    }
    return [name for name in (*QSTASH_PUBLISHES, *QSTASH_RECEIVES) if values[name] is None]


def qstash_problems(settings: QStashSettings) -> list[str]:
    """What is wrong with the QStash variables together: a token or a signing key without
    the rest that verifying QStash's deliveries needs."""
    keys = (settings.qstash_current_signing_key, settings.qstash_next_signing_key)
    if settings.qstash_token is not None:
        why = "QSTASH_TOKEN is set but"
    elif any(key is not None for key in keys):
        # Draining: no more publishing, but QStash's deliveries must still verify.
        why = "QStash signing keys are set but"
    else:
        return []
    problems = []
    if None in keys:
        problems.append(
            f"{why} not both of QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY: "
            "QStash signs with either, so deliveries could not be verified; copy both "
            "keys from the QStash console"
        )
    if settings.webhook_url is None:
        problems.append(
            f"{why} WEBHOOK_URL is not: QStash's deliveries are verified against the "
            "public base URL of this app, e.g. WEBHOOK_URL=https://app.example.com"
        )
    return problems
