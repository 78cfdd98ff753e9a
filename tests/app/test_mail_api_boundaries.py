"""What the Gmail and Graph adapters refuse whatever a rule, an AI category or a sender's
mail asks (system labels and folders, search syntax in a Message-ID, ids that are path
syntax), and how their access tokens outlive a job."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bridge.outcome import PermanentError
from tasks.mail.gmail import GmailProvider
from tasks.mail.graph import GraphProvider
from tasks.mail.port import MessageNotFound, OutgoingMail
from tests.support.gmail_double import GmailDouble
from tests.support.graph_double import GraphDouble

EMAIL = "me@example.test"


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


def _gmail_message(gmail: GmailDouble, message_id: str = "<plain@example.test>") -> str:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "bob@example.test", EMAIL, "Hi"
    message["Message-ID"] = message_id
    message.set_content("Hello.")
    return gmail.deliver(message)


def _gmail(gmail: GmailDouble) -> GmailProvider:
    return GmailProvider(gmail.grant(), gmail.settings())


@pytest.mark.parametrize("label", ["Trash", "SPAM", "inbox", "Unread"])
def test_gmail_refuses_a_system_label_as_a_label(gmail: GmailDouble, label: str) -> None:
    key = _gmail_message(gmail)

    with pytest.raises(PermanentError, match="system labels"):
        _gmail(gmail).label(key, label)
    assert gmail.labels_of(key) == {"INBOX", "UNREAD"}


@pytest.mark.parametrize("folder", ["Trash", "spam"])
def test_gmail_refuses_to_move_into_trash_or_spam(gmail: GmailDouble, folder: str) -> None:
    key = _gmail_message(gmail)

    with pytest.raises(PermanentError):
        _gmail(gmail).move(key, folder)
    assert gmail.labels_of(key) == {"INBOX", "UNREAD"}


def test_gmail_reply_never_searches_with_a_message_id_holding_search_syntax(
    gmail: GmailDouble,
) -> None:
    hostile = '<x@y OR subject:"payroll">'
    _gmail_message(gmail, hostile)

    _gmail(gmail).send(OutgoingMail(to="bob@example.test", subject="Re: Hi", body=".",
                                    in_reply_to=hostile))  # fmt: skip

    assert not [call for call in gmail.calls("messages.list") if "OR" in (call.param("q") or "")]
    assert "threadId" not in gmail.calls("messages.send")[0].body


def test_gmail_keeps_one_access_token_across_providers(gmail: GmailDouble) -> None:
    _gmail_message(gmail)
    for _ in range(3):  # three jobs, one worker process
        _gmail(gmail).list_threads(page_size=1)

    assert len(gmail.calls("token")) == 1


def _graph(graph: GraphDouble, **grant: Any) -> GraphProvider:
    return GraphProvider(graph.grant(**grant), graph.settings())


@pytest.mark.parametrize("folder", ["Deleted Items", "deleteditems", "Junk Email"])
def test_graph_refuses_to_move_into_deleted_items_or_junk(graph: GraphDouble, folder: str) -> None:
    key = graph.deliver("Hi")

    with pytest.raises(PermanentError, match="not a folder a job may move mail into"):
        _graph(graph).move(key, folder)
    assert graph.folder_of(key) == "inbox"


@pytest.mark.parametrize("message_id", ["", ".", ".."])
def test_graph_ids_that_are_path_syntax_are_no_message(graph: GraphDouble, message_id: str) -> None:
    mail = _graph(graph)
    mail.list_threads(page_size=1)  # the token and the folders, read before
    before = len(graph.log)

    with pytest.raises(MessageNotFound):
        mail.get_message(message_id)
    assert len(graph.log) == before


def test_graph_keeps_one_access_token_across_providers(graph: GraphDouble) -> None:
    graph.deliver("Hi")
    for _ in range(3):
        _graph(graph).list_threads(page_size=1)

    assert len(graph.token_requests) == 1


def test_graph_stores_the_refresh_token_microsoft_rotated_to(graph: GraphDouble) -> None:
    from bridge.store.db import session_scope
    from tasks.account_connections import save_connection
    from tasks.accounts import mailbox_of
    from tasks.mail.oauth_settings import OAuthSettings
    from tasks.models import EmailAccount, MailProviderKind

    key = Fernet.generate_key().decode()
    account, _ = save_connection(
        MailProviderKind.MICROSOFT,
        EMAIL,
        graph.refresh_token,
        OAuthSettings(token_encryption_key=key),
    )
    env = {**graph.env(), "TOKEN_ENCRYPTION_KEY": key}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        mailbox_of(account.id)[1].list_threads(page_size=1)

    with session_scope() as session:
        stored = session.get(EmailAccount, account.id)
        assert stored is not None
        ciphertext = stored.provider_settings["refresh_token_encrypted"]
    assert Fernet(key).decrypt(ciphertext.encode()).decode() == graph.issued_refresh_tokens[-1]


def test_graph_lists_no_threads_in_a_well_known_folder_the_mailbox_lacks(
    graph: GraphDouble,
) -> None:
    graph.deliver("Hi")
    archive = graph.store.folder("archive")
    assert archive is not None
    del graph.store.folders[archive.id]

    page = _graph(graph).list_threads(folder="Archive")

    assert (page.thread_ids, page.next_page_token) == ([], None)
