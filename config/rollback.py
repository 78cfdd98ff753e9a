"""The migration's rollback to QStash from where a deployment stands (docs/MIGRATION.md):
which phase its settings say it is in, and the exact steps back. A pure function of
Settings, printed by `jobbridge config` and named in the error of a rollback that lacks
a key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.provider import Provider
from config.providers import resolve_chain
from config.qstash_keys import QSTASH_PUBLISHES, WHERE_FROM, missing_qstash_variables

if TYPE_CHECKING:
    from config.settings import Settings

RESTART = "restart the app's processes (web, worker, beat) so they read the change"
KEEP_INNGEST = (
    "keep INNGEST_SIGNING_KEY and INNGEST_BASE_URL: runs Inngest already holds (migrated "
    "actions asleep, jobs in flight) still call /api/inngest and must be verified"
)


@dataclass(frozen=True)
class Rollback:
    phase: str
    steps: tuple[str, ...]


def rollback_plan(settings: Settings) -> Rollback:
    primary = resolve_chain(settings).primary
    if primary is Provider.QSTASH:
        return Rollback(
            "jobs are published to QStash (before the switch, or rolled back)",
            (
                "nothing to roll back. To roll forward: JOB_PROVIDER=auto (or inngest), "
                f"{RESTART}, then `jobbridge migrate qstash-to-inngest` (event ids make "
                "a second run harmless)",
            ),
        )
    if primary is not Provider.INNGEST:
        return Rollback(
            f"jobs are published to {primary.value}, not on the QStash-to-Inngest path",
            ("no rollback applies: neither Inngest nor QStash publishes",),
        )
    missing = missing_qstash_variables(settings)
    if not missing:
        phase = "phases 1-3: Inngest publishes, QStash is still configured"
    elif missing == list(QSTASH_PUBLISHES):
        phase = "phase 4, part way: QSTASH_TOKEN removed, the signing keys still kept"
    else:
        phase = "phases 4-5: QStash removed"
    steps = []
    if missing:
        steps.append(f"put back {', '.join(missing)}: {WHERE_FROM}")
    steps += ["set JOB_PROVIDER=qstash", RESTART, KEEP_INNGEST]
    return Rollback(phase, tuple(steps))
