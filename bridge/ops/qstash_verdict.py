"""The `/status` page's verdict: may QSTASH_* be removed now (docs/MIGRATION.md, phases
4 and 5)? Yes only when every fact says so; otherwise no, naming each fact that does not.

- the chain no longer needs QStash: Inngest is configured to publish, and QStash is not
  first in the chain (JOB_PROVIDER=qstash, or auto mode without Inngest);
- Inngest answers its probe: while it is down QStash is the fallback, and removing its
  keys would leave new jobs nowhere to go;
- the app has nothing pending that was published to QStash;
- QStash answered, and holds no message for this app still to deliver or retry, with
  its logs read to the end (bridge.ops.qstash_holdings: over several refreshes when
  they are long);
- QStash's dead-letter queue holds none of this app's messages, read to the end.

A fact that could not be learnt (QStash or the database unreachable) is a "no": removing
the keys cannot be undone for the messages QStash still holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.ops.probes import Check
from bridge.ops.qstash_holdings import QStashHoldings
from bridge.qstash import drain
from config import Provider, ProviderChain, Settings

QSTASH = Provider.QSTASH.value


@dataclass(frozen=True)
class Verdict:
    answer: str  # "yes", "no", or "not set" (nothing to remove)
    reasons: tuple[str, ...]

    @property
    def safe(self) -> bool:
        return self.answer == "yes"

    @property
    def line(self) -> str:
        if self.answer == "not set":
            return f"safe to remove QSTASH_*: nothing to remove, {self.reasons[0]}"
        return f"safe to remove QSTASH_*: {self.answer}, because {'; '.join(self.reasons)}"

    def as_json(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            # The answer is "yes"; false for "no", and for "not set" too (nothing to
            # remove is not a go-ahead to remove anything).
            "safe": self.safe,
            "line": self.line,
            "reasons": list(self.reasons),
        }


def _plural(count: int, one: str) -> str:
    return f"{count} {one if count == 1 else one + 's'}"


# Each check adds to `no` (a fact that blocks) or to `yes` (a fact that holds).
Facts = tuple[list[str], list[str]]


def judge(
    settings: Settings,
    chain: ProviderChain,
    qstash: QStashHoldings,
    *,
    inngest: Check,
    pending_title: str | None,
    pending_by_provider: dict[str, int] | None,
    app_error: str | None = None,
) -> Verdict:
    """`inngest` is Inngest's probe; `pending_title` names what the app counts
    ("scheduled actions"; None: the app counts nothing); `pending_by_provider` is None
    when the database could not say, and `app_error` says why."""
    keys = (settings.qstash_current_signing_key, settings.qstash_next_signing_key)
    if settings.qstash_token is None and all(key is None for key in keys):
        return Verdict("not set", ("QSTASH_* are not set",))
    facts: Facts = ([], [])
    _chain(settings, chain, facts)
    _publisher(settings, inngest, facts)
    if pending_title is not None:
        _app(pending_title, pending_by_provider, app_error, facts)
    _qstash(qstash, facts)
    no, yes = facts
    return Verdict("no", tuple(no)) if no else Verdict("yes", tuple(yes))


def _chain(settings: Settings, chain: ProviderChain, facts: Facts) -> None:
    no, yes = facts
    if chain.primary is Provider.QSTASH:
        why = (
            "JOB_PROVIDER=qstash"
            if settings.job_provider == QSTASH
            else "no INNGEST_EVENT_KEY or INNGEST_DEV"
        )
        no.append(f"QStash is first in the chain ({why}): new jobs are published to it")
    elif not settings.inngest_publishes:
        no.append("Inngest is not configured to publish (no INNGEST_EVENT_KEY or INNGEST_DEV)")
    else:
        yes.append(f"new jobs go to {chain.primary.value}, not QStash")


def _publisher(settings: Settings, inngest: Check, facts: Facts) -> None:
    """Inngest up, as its probe says: not configured is the chain's fact already."""
    no, yes = facts
    if not settings.inngest_publishes:
        return
    if inngest.ok is True:
        yes.append("Inngest is up")
    else:
        state = "DOWN" if inngest.ok is False else "unknown"
        no.append(
            f"Inngest is {state} ({inngest.detail}): removing QStash's keys while Inngest "
            "is down removes the fallback"
        )


def _app(title: str, pending: dict[str, int] | None, error: str | None, facts: Facts) -> None:
    no, yes = facts
    if pending is None:
        no.append(f"the database could not be asked: {error or 'no answer'}")
    elif (held := pending.get(QSTASH, 0)) > 0:
        no.append(f"{title} still pending on QStash: {held}")
    else:
        yes.append(f"no {title} pending on QStash")


def _qstash(qstash: QStashHoldings, facts: Facts) -> None:
    no, yes = facts
    if not qstash.configured:
        no.append(
            "QStash could not be asked: QSTASH_TOKEN is not set, so what it still holds "
            "(messages, dead letters) is unknown; set it again to let this page ask"
        )
        return
    if qstash.error is not None:
        no.append(f"QStash could not be asked: {qstash.error}")
        return
    pending = qstash.pending_for_app or 0
    if pending:
        states = ", ".join(
            f"{state} {qstash.by_state[state]}"
            for state in qstash.states()
            if state not in drain.FINAL_STATES and qstash.by_state.get(state)
        )
        so_far = " as far as its logs were read" if qstash.logs_partial is not None else ""
        no.append(
            f"QStash still holds {_plural(pending, 'message')} for this app ({states}){so_far}"
        )
    if qstash.logs_partial is not None:
        no.append(
            f"QStash's logs were not read to the end yet ({qstash.logs_partial}): a message "
            "still to deliver may be in the rest"
        )
    elif not pending:
        yes.append("QStash holds no message for this app")
    dead = qstash.dlq_for_app or 0
    if dead:
        more = " or more" if qstash.dlq_is_lower_bound else ""
        no.append(
            f"QStash's DLQ holds {_plural(dead, 'message')}{more} for this app "
            "(`jobbridge qstash dlq replay --all`, or delete them)"
        )
    elif qstash.dlq_is_lower_bound:
        no.append("QStash's DLQ was read only in part: it may hold this app's messages")
    else:
        yes.append("its DLQ holds none of this app's messages")
