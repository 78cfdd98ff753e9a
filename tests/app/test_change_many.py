"""`MailProvider.change_many`: many messages labelled, archived or marked read at once,
in one request where the provider batches (Gmail's batchModify, Graph's $batch), one by
one elsewhere; messages gone since are passed over."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tasks.mail.gmail import GmailProvider
from tasks.mail.graph import GraphProvider
from tasks.mail.maildir import MaildirProvider
from tests.support.gmail_double import GmailDouble
from tests.support.graph_double import GraphDouble

EMAIL = "me@example.test"


def _message(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "bob@example.test", EMAIL, subject
    message.set_content(f"Body of {subject}.")
    return message


@pytest.fixture
def gmail() -> Iterator[GmailDouble]:
    with GmailDouble(EMAIL) as double:
        yield double
        assert double.violations == []


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphDouble]:
    with GraphDouble(email=EMAIL) as double:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(double.ca_bundle))
        yield double
        assert double.violations == []


def test_gmail_changes_many_messages_in_one_batch_modify(gmail: GmailDouble) -> None:
    keys = [gmail.deliver(_message(f"m{n}")) for n in range(12)]
    mail = GmailProvider(gmail.grant(), gmail.settings())

    mail.change_many(keys, labels=["Processed", "Done"], archive=True, mark_read=True)

    assert len(gmail.calls("messages.batchModify")) == 1
    assert gmail.calls("messages.modify") == []
    assert all(gmail.labels_of(key) == {"Processed", "Done"} for key in keys)


def test_gmail_changes_a_few_messages_with_one_modify_each(gmail: GmailDouble) -> None:
    """Fewer than ten: cheaper in Gmail's quota (5 units each, a batchModify 50)."""
    keys = [gmail.deliver(_message(f"m{n}")) for n in range(3)]
    mail = GmailProvider(gmail.grant(), gmail.settings())

    mail.change_many(keys, labels=["Processed", "Done"], archive=True, mark_read=True)

    assert len(gmail.calls("messages.modify")) == 3
    assert gmail.calls("messages.batchModify") == []
    assert all(gmail.labels_of(key) == {"Processed", "Done"} for key in keys)


def test_gmail_change_many_passes_over_messages_gone_since(gmail: GmailDouble) -> None:
    kept = gmail.deliver(_message("kept"))
    mail = GmailProvider(gmail.grant(), gmail.settings())

    mail.change_many([kept, "18c0ffee00000000"], archive=True)

    assert "INBOX" not in gmail.labels_of(kept)


def test_graph_changes_many_messages_through_batches_of_twenty(graph: GraphDouble) -> None:
    keys = [graph.deliver(f"m{n}", categories=("Old",)) for n in range(25)]
    mail = GraphProvider(graph.grant(), graph.settings())

    mail.change_many(keys, labels=["Processed", "Done"], archive=True, mark_read=True)

    assert all(entry.batched for entry in graph.requests("PATCH /me/messages/"))
    assert all(entry.batched for entry in graph.requests("POST /me/messages/"))
    # the well-known folders once, then read, change and move: two batches of 20 each
    assert len(graph.requests("POST /$batch")) == 1 + 2 * 3
    for key in keys:
        state = graph.message(key)
        assert state is not None
        assert (state["folder"], state["isRead"]) == ("archive", True)
        assert state["categories"] == ["Old", "Processed", "Done"]


def test_maildir_change_many_passes_over_messages_gone_since(tmp_path: Path) -> None:
    mail = MaildirProvider(tmp_path / "maildir", EMAIL)
    kept = mail.deliver(_message("kept"))

    mail.change_many([kept, "no-such-message"], labels=["Done"], archive=True)

    assert mail.get_message(kept).folder == "Archive"
    assert mail.get_message(kept).labels == frozenset({"Done"})
