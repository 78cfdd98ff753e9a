"""The database side of sender categorization: which senders already have a category,
and writing a sender's first category.

Only a NULL category is ever set, so the first category written wins; the Sender row
is unique per (account, email) and the Category row per (account, name), so concurrent
batches settle on one row each.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bridge.store.db import read_scope, rows_changed, session_scope
from bridge.store.key_lists import found, keys_table
from tasks.models import Category, Sender, utcnow


def categorized(account_id: str, senders: Sequence[str]) -> set[str]:
    """The senders among `senders` that already have a category: one index probe a
    sender (`key_lists`)."""
    if not senders:
        return set()
    with read_scope() as session:
        wanted = keys_table(senders, session.get_bind().dialect.name)
        has_category = found(
            Sender.email_account_id == account_id,
            Sender.email == wanted.key,
            Sender.category_id.is_not(None),
        )
        statement = select(wanted.key).select_from(wanted.table).where(has_category.is_not(None))
        return set(session.scalars(statement))


def save(account_id: str, email: str, category: str) -> bool:
    """Set the sender's category if it has none; False when it had one already."""
    with session_scope() as session:
        category_id = _category_id(session, account_id, category)
        if _set_if_uncategorized(session, account_id, email, category_id):
            return True
        exists = session.scalar(
            select(Sender.id).where(Sender.email_account_id == account_id, Sender.email == email)
        )
        if exists is not None:
            return False  # categorized since we looked: the first category written wins
        try:
            with session.begin_nested():
                session.add(
                    Sender(
                        email_account_id=account_id,
                        email=email,
                        category_id=category_id,
                        categorized_at=utcnow(),
                    )
                )
        except IntegrityError:
            # Another run inserted the sender in the meantime (unique account, email).
            return _set_if_uncategorized(session, account_id, email, category_id)
    return True


def _set_if_uncategorized(session: Session, account_id: str, email: str, category_id: str) -> bool:
    return (
        rows_changed(
            session,
            update(Sender)
            .where(
                Sender.email_account_id == account_id,
                Sender.email == email,
                Sender.category_id.is_(None),
            )
            .values(category_id=category_id, categorized_at=utcnow()),
        )
        == 1
    )


def _category_id(session: Session, account_id: str, name: str) -> str:
    """The account's category of that name (any case), created the first time."""

    def existing() -> str | None:
        return session.scalar(
            select(Category.id)
            .where(
                Category.email_account_id == account_id,
                func.lower(Category.name) == name.lower(),
            )
            .order_by(Category.created_at)
            .limit(1)
        )

    found = existing()
    if found is not None:
        return found
    try:
        with session.begin_nested():
            row = Category(email_account_id=account_id, name=name)
            session.add(row)
        return row.id
    except IntegrityError:
        # A concurrent batch created it first (unique account, name): use theirs.
        found = existing()
        if found is None:
            raise
        return found
