"""An account is found by its address in any case, and always by its exact spelling
(SQLite's lower() folds ASCII letters only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.store.db import session_scope
from tasks.account_lookup import stored_account
from tasks.models import EmailAccount, MailProviderKind
from tasks.schema import upgrade


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, configure: Callable[..., Any], tmp_path: Path) -> str:
    if request.param == "sqlite":
        settings = configure(DATABASE_URL=None, DATA_DIR=str(tmp_path))
        upgrade(settings.sqlalchemy_url)
    return str(request.param)


ADDRESS = "ÉLODIE@Example.test"


def found_for(asked: str) -> str | None:
    with session_scope() as session:
        session.add(EmailAccount(email=ADDRESS, provider=MailProviderKind.MAILDIR))
    with session_scope() as session:
        account = stored_account(session, asked)
        return None if account is None else account.email


def test_the_exact_spelling_is_found_whatever_its_letters(database: str) -> None:
    assert found_for(ADDRESS) == ADDRESS


def test_another_case_is_found_where_the_database_folds_every_letter(
    configure: Callable[..., Any],
) -> None:
    configure()  # the suite's PostgreSQL

    assert found_for("élodie@example.test") == ADDRESS
