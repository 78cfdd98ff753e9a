"""An account's enabled rules, kept by each process while they are current.

The database gives an account's `rules_version` a new random token on every change to
its rules or their actions (triggers, migration 0008), whoever makes it, a TRUNCATE
included. A process keeps the rules it read with the token it read beside them, and
reads them again once an account it has just read shows another: a rule edited during a
bulk run applies from the next message whose job starts after the edit, with no
statement per message to find that out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from sqlalchemy import Select, select
from sqlalchemy.orm import joinedload

from bridge.store.db import read_scope
from tasks.models import EmailAccount, Rule

# Accounts whose rules a process keeps; the least recently used go first.
KEPT_ACCOUNTS_MAX = 1024

_kept: OrderedDict[str, tuple[int, tuple[Rule, ...]]] = OrderedDict()
_lock = threading.Lock()


def enabled_rules(account_id: str) -> Select[Rule]:
    """The account's enabled rules with their actions, in one statement (read with
    `.unique()`: the join repeats a rule per action). `first_match` orders them."""
    return (
        select(Rule)
        .where(Rule.email_account_id == account_id, Rule.enabled.is_(True))
        .options(joinedload(Rule.actions))
    )


def rules_of(account: EmailAccount) -> tuple[Rule, ...]:
    """The account's enabled rules as of its `rules_version` (read with the account) or
    later. Shared by every caller in the process: read them, never change them."""
    version = account.rules_version
    with _lock:
        kept = _kept.get(account.id)
        if kept is not None and kept[0] == version:
            _kept.move_to_end(account.id)
            return kept[1]
    # Read after the token: at least as new as it (an edit in between is read now and
    # kept under the older token, so the next account read reads the rules once more).
    with read_scope() as session:
        rules = tuple(session.scalars(enabled_rules(account.id)).unique())
    with _lock:
        _kept[account.id] = (version, rules)
        _kept.move_to_end(account.id)
        while len(_kept) > KEPT_ACCOUNTS_MAX:
            _kept.popitem(last=False)
    return rules
