"""Which senders already have a category (`categorize_records.categorized`), on both
databases the app runs on, for a list of any length."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.store.db import session_scope
from tasks.jobs.categorize_records import categorized, save
from tasks.models import EmailAccount
from tests.support.bulk_runs import use_database


@pytest.fixture(params=["postgresql", "sqlite"])
def account_id(
    request: pytest.FixtureRequest, configure: Callable[..., Any], tmp_path: Path
) -> str:
    use_database(request.param, configure, tmp_path)
    with session_scope() as session:
        account = EmailAccount(email="senders@example.test", provider="maildir")
        session.add(account)
        session.flush()
        return account.id


def test_only_the_senders_with_a_category_are_categorized(account_id: str) -> None:
    save(account_id, "shop@example.test", "Receipts")

    found = categorized(account_id, ["shop@example.test", "friend@example.test"])

    assert found == {"shop@example.test"}


def test_a_list_longer_than_sqlites_bound_parameter_limit_is_answered(
    account_id: str,
) -> None:
    senders = [f"sender-{n}@example.test" for n in range(40_000)]
    save(account_id, senders[-1], "Newsletters")

    assert categorized(account_id, senders) == {senders[-1]}


def test_no_senders_have_none_categorized(account_id: str) -> None:
    assert categorized(account_id, []) == set()
