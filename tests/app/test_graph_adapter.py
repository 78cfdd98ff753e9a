"""The Microsoft Graph adapter against the Graph double (tests/support/graph_double.py):
the mail port's behaviours as the Maildir and IMAP adapters show them, Graph's calls as
Graph documents them (`graph.violations` stays empty), and its errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.outcome import PermanentError, RetryLater
from tasks.mail.graph import SCOPES, GraphProvider
from tasks.mail.port import AccountDisconnected, InvalidPageToken, MessageNotFound, OutgoingMail
from tests.support.graph_double import GraphDouble
from tests.support.graph_double_http import serve


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphDouble]:
    with GraphDouble() as double:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(double.ca_bundle))  # msal trusts its CA
        yield double
        assert double.violations == []


def provider(graph: GraphDouble, refused: list[str] | None = None) -> GraphProvider:
    on_refused = None if refused is None else refused.append
    return GraphProvider(graph.grant(on_refused=on_refused), graph.settings())


@pytest.fixture
def mail(graph: GraphDouble) -> Iterator[GraphProvider]:
    made = provider(graph)
    yield made
    made.close()


def every_page(mail: GraphProvider, **options: Any) -> list[str]:
    seen: list[str] = []
    token: str | None = None
    while True:
        page = mail.list_threads(page_token=token, **options)
        seen += page.thread_ids
        token = page.next_page_token
        if token is None:
            return seen


def test_threads_are_conversations_newest_first_with_their_newest_message(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    lunch = graph.deliver("Lunch?", minutes_ago=30)
    report = graph.deliver("Report", minutes_ago=20)
    answer = graph.deliver("Re: Lunch?", minutes_ago=10, reply_to=lunch)

    page = mail.list_threads()

    assert page.thread_ids == [graph.conversation(lunch), graph.conversation(report)]
    assert page.newest_message_ids[graph.conversation(lunch)] == answer
    assert page.next_page_token is None


def test_a_message_reads_as_the_other_adapters_read_it(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    key = graph.deliver(
        "Invoice",
        sender="Bob <bob@example.test>",
        categories=("Bills",),
        attachments=True,
        headers={"List-Unsubscribe": "<mailto:off@example.test>"},
        read=True,
    )

    message = mail.get_message(key)

    state = graph.message(key)
    assert state is not None
    assert (message.id, message.thread_id, message.folder) == (
        key,
        state["conversationId"],
        "INBOX",
    )
    assert (message.sender, message.to, message.subject) == (
        "Bob <bob@example.test>",
        graph.email,
        "Invoice",
    )
    assert message.body == "Body of Invoice." and message.read and message.has_attachment
    assert message.labels == frozenset({"Bills"})
    assert message.message_id_header == state["internetMessageId"]
    assert message.date is not None and message.date.tzinfo is not None
    assert message.headers["list-unsubscribe"] == "<mailto:off@example.test>"
    assert not message.sent_by_me


def test_an_html_body_is_read_as_text(graph: GraphDouble, mail: GraphProvider) -> None:
    key = graph.deliver("News", html=True, body="<p>Hello <b>you</b></p><p>Bye</p>")

    assert mail.get_message(key).body == "Hello you\nBye"


def test_a_message_from_the_account_is_sent_by_me(graph: GraphDouble, mail: GraphProvider) -> None:
    key = graph.deliver("Note to self", sender=f"Me <{graph.email.upper()}>")

    assert mail.get_message(key).sent_by_me


def test_a_thread_is_every_message_of_the_conversation_oldest_first(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    first = graph.deliver("Plan", minutes_ago=30, folder="archive")
    graph.deliver("Re: Plan", minutes_ago=20, reply_to=first)
    graph.deliver("Re: Plan (deleted)", minutes_ago=10, reply_to=first, folder="deleteditems")

    thread = mail.get_thread(graph.conversation(first))

    assert [(m.subject, m.folder) for m in thread] == [("Plan", "Archive"), ("Re: Plan", "INBOX")]


def test_a_thread_without_messages_is_not_found(mail: GraphProvider) -> None:
    with pytest.raises(MessageNotFound):
        mail.get_thread("AAQkno-such-conversation")


def test_a_message_graph_does_not_find_is_not_found(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    key = graph.deliver("Soon gone")
    graph.fail(404, match="GET /me/messages/")

    with pytest.raises(MessageNotFound):
        mail.get_message(key)


def test_a_deleted_message_no_longer_exists(graph: GraphDouble, mail: GraphProvider) -> None:
    key = graph.deliver("Deleted", folder="deleteditems")

    with pytest.raises(MessageNotFound):
        mail.archive(key)
    assert graph.folder_of(key) == "deleteditems"


def test_the_window_and_unread_filter_choose_the_threads(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    graph.deliver("Old", minutes_ago=3 * 24 * 60)
    recent = graph.deliver("Recent", minutes_ago=5)
    graph.deliver("Recent but read", minutes_ago=6, read=True)
    graph.deliver("Too new", minutes_ago=0)

    now = datetime.now(UTC)
    page = mail.list_threads(
        after=now - timedelta(days=1), before=now - timedelta(minutes=2), unread_only=True
    )

    assert page.thread_ids == [graph.conversation(recent)]


def test_threads_with_an_excluded_category_are_left_out(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    graph.deliver("Handled", categories=("Processed",))
    waiting = graph.deliver("Waiting", categories=("Other",))

    page = mail.list_threads(exclude_labels=["Processed"])

    assert page.thread_ids == [graph.conversation(waiting)]


def test_paging_returns_every_thread_once(graph: GraphDouble, mail: GraphProvider) -> None:
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    roots = [
        graph.deliver(f"Thread {n}", received=moment - timedelta(minutes=10 * n)) for n in range(6)
    ]
    for n, root in enumerate(roots):  # older replies, interleaved across Graph's pages
        graph.deliver("Re", reply_to=root, received=moment - timedelta(minutes=10 * n + 75))
    tied = [graph.deliver(f"Tie {n}", received=moment - timedelta(minutes=25)) for n in range(3)]

    listed = every_page(mail, page_size=2)

    ties = sorted(graph.conversation(t) for t in tied)
    expected = [graph.conversation(r) for r in roots[:3]] + ties
    expected += [graph.conversation(r) for r in roots[3:]]
    assert listed == expected


def test_threads_archived_between_pages_are_neither_skipped_nor_repeated(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    roots = [graph.deliver(f"Thread {n}", minutes_ago=10 * n + 1) for n in range(7)]
    for root in roots:
        graph.deliver("Re", reply_to=root, minutes_ago=200)
    seen: list[str] = []
    token: str | None = None
    while True:
        page = mail.list_threads(page_token=token, page_size=2)
        seen += page.thread_ids
        for thread in page.thread_ids:  # what the clean job does with a page
            for message in mail.get_thread(thread):
                mail.archive(message.id)
        if (token := page.next_page_token) is None:
            break

    assert seen == [graph.conversation(root) for root in roots]


def test_a_foreign_page_token_is_refused_without_any_request(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    calls: list[str] = []

    def attacker(request: Any, method: str, body: bytes) -> Any:
        calls.append(request.path)
        raise AssertionError("the adapter called another host")

    elsewhere = serve(attacker, None, [])
    link = f"http://127.0.0.1:{elsewhere.server_port}/v1.0/me/messages?$skip=2"
    wrapped = base64.urlsafe_b64encode(json.dumps([link, "AAQk"]).encode()).decode()
    tokens = [
        link,
        "g1." + wrapped,
        "g1." + base64.urlsafe_b64encode(b'{"n": 1}').decode(),
        base64.urlsafe_b64encode(json.dumps([1, "t"]).encode()).decode(),
        "g1.%%%",
    ]
    try:
        for token in tokens:
            with pytest.raises(InvalidPageToken):
                mail.list_threads(page_token=token)
    finally:
        elsewhere.shutdown()
        elsewhere.server_close()
    assert calls == [] and graph.log == []


def test_a_folder_is_listed_by_its_display_name_and_a_missing_one_is_empty(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    graph.add_folder("Receipts")
    receipt = graph.deliver("Receipt", folder="Receipts")

    assert mail.list_threads(folder="Receipts").thread_ids == [graph.conversation(receipt)]
    assert mail.list_threads(folder="Nowhere").thread_ids == []


def test_an_archived_message_keeps_its_id(graph: GraphDouble, mail: GraphProvider) -> None:
    graph.deliver("Quarterly report")
    (key,) = mail.list_threads().newest_message_ids.values()  # the id as Graph gave it

    mail.archive(key)
    mail.archive(key)  # twice is one move

    assert mail.get_message(key).folder == "Archive"
    assert len(graph.requests("POST /me/messages/")) == 1
    assert mail.list_threads().thread_ids == []


def test_move_creates_the_folder_once(graph: GraphDouble, mail: GraphProvider) -> None:
    first, second = graph.deliver("Receipt 1"), graph.deliver("Receipt 2")

    mail.move(first, "Receipts 2026")
    mail.move(second, "Receipts 2026")
    provider(graph).move(graph.deliver("Receipt 3"), "Receipts 2026")

    assert len(graph.requests("POST /me/mailFolders")) == 1
    assert graph.folder_names().count("Receipts 2026") == 1
    assert mail.get_message(second).folder == "Receipts 2026"


def test_a_label_is_added_to_the_existing_categories(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    key = graph.deliver("Invoice", categories=("Blue category",))

    mail.label(key, "Processed")
    mail.label(key, "Processed")

    state = graph.message(key)
    assert state is not None and state["categories"] == ["Blue category", "Processed"]
    assert len(graph.requests("PATCH /me/messages/")) == 1


def test_mark_read(graph: GraphDouble, mail: GraphProvider) -> None:
    key = graph.deliver("Unread")

    mail.mark_read(key)

    assert mail.get_message(key).read


def test_the_star_is_the_follow_up_flag(graph: GraphDouble, mail: GraphProvider) -> None:
    key = graph.deliver("Flag me")
    assert not mail.is_starred(mail.get_message(key))

    graph.set_flag(key)

    assert mail.is_starred(mail.get_message(key))


def test_labels_are_the_master_categories(graph: GraphDouble, mail: GraphProvider) -> None:
    graph.add_category("Red category")
    graph.add_category("Processed")

    assert mail.list_labels() == ["Processed", "Red category"]


def test_a_new_mail_goes_out_through_send_mail(graph: GraphDouble, mail: GraphProvider) -> None:
    sent_id = mail.send(
        OutgoingMail(
            to="Ann <ann@example.test>",
            subject="Hi",
            body="Hello",
            cc="bob@example.test",
            idempotency_key="digest-1",
        )
    )

    (sent,) = graph.outbox
    assert (sent["id"], sent["folder"], sent["internetMessageId"]) == (
        sent_id,
        "sentitems",
        "<digest-1@jobbridge>",
    )
    assert sent["toRecipients"] == [
        {"emailAddress": {"address": "ann@example.test", "name": "Ann"}}
    ]
    assert sent["body"] == {"contentType": "text", "content": "Hello"}
    assert len(graph.requests("POST /me/sendMail")) == 1


def test_sending_twice_with_one_key_sends_once(graph: GraphDouble, mail: GraphProvider) -> None:
    mail_once = OutgoingMail(to="ann@example.test", subject="Hi", body="x", idempotency_key="k1")

    first = mail.send(mail_once)
    second = provider(graph).send(mail_once)

    assert first == second and len(graph.outbox) == 1


def test_a_reply_goes_through_create_reply_and_send_in_its_conversation(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    original = mail.get_message(graph.deliver("Question"))

    sent_id = mail.send(
        OutgoingMail(
            to=original.sender,
            subject="Re: Question",
            body="Yes",
            in_reply_to=original.message_id_header,
            idempotency_key="reply-1",
        )
    )

    assert [e.route for e in graph.requests("POST /me/messages/")] == [
        f"POST /me/messages/{original.id}/createReply",
        f"POST /me/messages/{sent_id}/send",
    ]
    (sent,) = graph.outbox
    assert sent["conversationId"] == original.thread_id and not sent["isDraft"]
    assert (sent["internetMessageId"], sent["body"]["content"]) == ("<reply-1@jobbridge>", "Yes")
    assert [m.id for m in mail.get_thread(original.thread_id)] == [original.id, sent_id]


def test_a_reply_interrupted_before_sending_sends_its_draft_once(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    original = mail.get_message(graph.deliver("Question"))
    reply = OutgoingMail(
        to=original.sender, subject="Re", body="Yes", in_reply_to=original.message_id_header,
        idempotency_key="reply-2",
    )  # fmt: skip
    graph.fail(503, match="POST /me/messages/*/send")
    with pytest.raises(RetryLater):
        mail.send(reply)

    sent_id = provider(graph).send(reply)

    assert [m["id"] for m in graph.outbox] == [sent_id]
    assert len(graph.requests("POST /me/messages/*/createReply")) == 1
    assert graph.ids_in("drafts") == []


def test_apply_many_uses_batches_of_twenty(graph: GraphDouble, mail: GraphProvider) -> None:
    keys = [graph.deliver(f"Note {n}") for n in range(45)]

    missing = mail.apply_many([*keys, "AAkAgone"], mark_read=True)

    assert missing == ["AAkAgone"]
    batches = graph.requests("POST /$batch")
    assert [len(b.body["requests"]) for b in batches] == [20, 20, 6]
    assert all((graph.message(k) or {}).get("isRead") for k in keys)


def test_apply_many_labels_and_moves(graph: GraphDouble, mail: GraphProvider) -> None:
    keys = [graph.deliver(f"Note {n}", categories=("Blue",)) for n in range(3)]

    mail.apply_many(keys, label="Done", folder="Archive")

    assert [(graph.message(k) or {}).get("categories") for k in keys] == [["Blue", "Done"]] * 3
    assert {graph.folder_of(k) for k in keys} == {"archive"}


@pytest.mark.parametrize(
    ("status", "retry_after", "wait"), [(429, 7, 7.0), (503, 12, 12.0), (504, None, 30.0)]
)
def test_throttling_and_unavailability_are_retry_later_with_graphs_wait(
    graph: GraphDouble, mail: GraphProvider, status: int, retry_after: int | None, wait: float
) -> None:
    key = graph.deliver("Busy")
    graph.fail(status, retry_after=retry_after, match="GET /me/messages/")

    with pytest.raises(RetryLater) as raised:
        mail.get_message(key)

    assert raised.value.retry_after == wait


def test_throttling_inside_a_batch_is_retry_later_with_its_wait(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    keys = [graph.deliver(f"Note {n}") for n in range(3)]
    graph.fail(429, retry_after=11, match="PATCH /me/messages/")

    with pytest.raises(RetryLater) as raised:
        mail.apply_many(keys, mark_read=True)

    assert raised.value.retry_after == 11
    assert mail.apply_many(keys, mark_read=True) == []  # the retry does the rest


def test_a_refused_refresh_token_disconnects_the_account(graph: GraphDouble) -> None:
    refused: list[str] = []
    graph.revoke()

    with pytest.raises(AccountDisconnected) as raised:
        provider(graph, refused).get_message(graph.deliver("Anything"))

    assert refused == [str(raised.value)] and "invalid_grant" in refused[0]
    assert graph.refresh_token not in str(raised.value) and graph.log == []


def test_the_access_token_is_kept_and_renewed_once_when_graph_refuses_it(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    key = graph.deliver("Hello")
    mail.get_message(key)
    mail.mark_read(key)
    assert len(graph.token_requests) == 1
    graph.expire_access_tokens()

    mail.get_message(key)

    assert len(graph.token_requests) == 2
    assert graph.token_requests[1]["refresh_token"] == graph.issued_refresh_tokens[0]
    assert set(graph.token_requests[0]["scope"].split()) >= {*SCOPES, "offline_access"}


def test_graph_refusing_a_fresh_token_is_permanent(graph: GraphDouble, mail: GraphProvider) -> None:
    graph.fail(401, times=2, match="GET /me/messages/", code="InvalidAuthenticationToken")

    with pytest.raises(PermanentError):
        mail.get_message(graph.deliver("Hello"))


def test_another_client_error_is_permanent_naming_the_call_and_graphs_code(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    graph.fail(403, match="PATCH /me/messages/", code="ErrorAccessDenied")

    with pytest.raises(PermanentError) as raised:
        mail.mark_read(graph.deliver("Hello"))

    assert "mark a message read" in str(raised.value) and "ErrorAccessDenied" in str(raised.value)
    assert graph.client_secret is not None and graph.client_secret not in str(raised.value)


def test_a_public_client_refreshes_without_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    with GraphDouble(client_secret=None) as graph:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(graph.ca_bundle))
        key = graph.deliver("Hello")
        assert provider(graph).get_message(key).subject == "Hello"
        assert graph.violations == []


def test_every_graph_request_asks_for_immutable_ids(
    graph: GraphDouble, mail: GraphProvider
) -> None:
    key = graph.deliver("Hello")
    mail.apply_many([key], label="X", folder="Later")
    mail.get_thread(mail.get_message(key).thread_id)

    assert graph.log and all(entry.immutable for entry in graph.log)
