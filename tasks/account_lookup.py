"""Finding an email account by its address: one mailbox, whatever the case."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from tasks.models import EmailAccount


def same_address(address: str) -> str:
    """The form two addresses are compared in: one mailbox, whatever the case. Senders
    are stored in it; an account keeps the spelling it was given (see stored_account)."""
    return address.lower()


def stored_account(session: Session, email: str) -> EmailAccount | None:
    """The account stored for this address: spelt the same, else in another case, which
    is the same mailbox; it keeps the spelling it was stored with."""
    found: EmailAccount | None = session.scalars(
        select(EmailAccount)
        # The exact spelling too: SQLite's lower() folds ASCII letters only.
        .where(
            or_(
                EmailAccount.email == email,
                func.lower(EmailAccount.email) == same_address(email),
            )
        )
        .order_by((EmailAccount.email == email).desc(), EmailAccount.email)
        .limit(1)
    ).first()
    return found
