"""The Gmail adapter against the Gmail double (a real HTTP server that holds every
request to the discovery document google-api-python-client ships): the mail port's
behaviours as the Maildir and IMAP adapters show them, Gmail's labels, and Gmail's and
Google's refusals as the port's errors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from bridge.outcome import PermanentError, RetryLater
from tasks.mail.gmail import SCOPES, GmailProvider
from tasks.mail.port import (
    AccountDisconnected,
    InvalidPageToken,
    MessageNotFound,
    OutgoingMail,
)
from tests.support.gmail_double import GmailDouble


@pytest.fixture
def gmail() -> Iterator[GmailDouble]:
    with GmailDouble("me@example.test") as double:
        yield double
        assert double.violations == []  # every request the adapter made was Gmail's


@pytest.fixture
def mail(gmail: GmailDouble) -> Iterator[GmailProvider]:
    provider = GmailProvider(gmail.grant(), gmail.settings())
    yield provider
    provider.close()


def message(
    subject: str, *, minutes_ago: int = 1, reply_to: EmailMessage | None = None, **headers: str
) -> EmailMessage:
    built = EmailMessage()
    built["From"] = headers.pop("sender", "ann@example.test")
    built["To"] = "me@example.test"
    built["Subject"] = subject
    built["Date"] = format_datetime(datetime.now(UTC) - timedelta(minutes=minutes_ago))
    built["Message-ID"] = make_msgid("gmail-test")
    if reply_to is not None:
        built["In-Reply-To"] = reply_to["Message-ID"]
        built["References"] = f"{reply_to.get('References', '')} {reply_to['Message-ID']}".strip()
    for name, value in headers.items():
        built[name.replace("_", "-")] = value
    built.set_content(f"Body of {subject}.")
    return built


def sent_mime(gmail: GmailDouble, index: int = -1) -> EmailMessage:
    return BytesParser(EmailMessage, policy=default_policy).parsebytes(gmail.sent[index].raw)


# Reading ---------------------------------------------------------------------------------
def test_threads_are_listed_newest_first_and_read_oldest_first(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    lunch = message("Lunch?", minutes_ago=30)
    first = gmail.deliver(lunch)
    report = gmail.deliver(message("Report", minutes_ago=20))
    gmail.deliver(message("Re: Lunch?", minutes_ago=10, reply_to=lunch))

    page = mail.list_threads()

    assert page.thread_ids == [gmail.message(first).thread_id, gmail.message(report).thread_id]
    assert page.next_page_token is None
    thread = mail.get_thread(page.thread_ids[0])
    assert [m.subject for m in thread] == ["Lunch?", "Re: Lunch?"]
    assert thread[1].body.strip() == "Body of Re: Lunch?."


def test_paging_across_pages_returns_every_thread_once(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    keys = [gmail.deliver(message(f"Note {n}", minutes_ago=n + 1)) for n in range(7)]
    seen: list[str] = []
    token: str | None = None
    while True:
        page = mail.list_threads(page_size=3, page_token=token)
        seen += page.thread_ids
        token = page.next_page_token
        if token is None:
            break

    assert seen == keys  # newest first, each once
    assert [r.param("maxResults") for r in gmail.calls("threads.list")] == ["3", "3", "3"]


def test_threads_archived_between_pages_are_neither_skipped_nor_repeated(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    keys = [gmail.deliver(message(f"Note {n}", minutes_ago=n + 1)) for n in range(6)]
    first = mail.list_threads(page_size=2)
    for thread in first.thread_ids:
        mail.archive(thread)  # one message each: its id is the thread's

    second = mail.list_threads(page_size=2, page_token=first.next_page_token)

    assert second.thread_ids == keys[2:4]


def test_a_page_token_gmail_did_not_issue_is_invalid(mail: GmailProvider) -> None:
    with pytest.raises(InvalidPageToken, match=r"users\.threads\.list"):
        mail.list_threads(page_token="not-a-gmail-token")


def test_the_window_is_from_after_up_to_before(gmail: GmailDouble, mail: GmailProvider) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    gmail.deliver(message("Too old"), received=now - timedelta(hours=3))
    inside = gmail.deliver(message("Inside"), received=now - timedelta(hours=2))
    gmail.deliver(message("Too new"), received=now - timedelta(hours=1))

    page = mail.list_threads(after=now - timedelta(hours=2), before=now - timedelta(hours=1))

    assert page.thread_ids == [inside]
    after, before = (now - timedelta(hours=h) for h in (2, 1))
    query = gmail.calls("threads.list")[-1].param("q")
    assert query == f"after:{int(after.timestamp())} before:{int(before.timestamp())}"


def test_unread_only_lists_threads_with_an_unread_message(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    unread = gmail.deliver(message("Unread"))
    gmail.deliver(message("Read"), labels=["INBOX"])

    assert mail.list_threads(unread_only=True).thread_ids == [unread]
    assert gmail.calls("threads.list")[-1].param("q") == "is:unread"


def test_excluded_labels_leave_their_threads_out_whatever_their_case(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    kept = gmail.deliver(message("Kept"))
    gmail.deliver(message("Done already"), labels=["INBOX", "Processed Mail"])

    page = mail.list_threads(exclude_labels=["processed mail", "Never made"])

    assert page.thread_ids == [kept]
    assert gmail.calls("threads.list")[-1].param("q") == '-label:"Processed Mail"'


def test_folders_are_labels_and_archive_is_all_mail_outside_the_inbox(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    receipt = gmail.deliver(message("Receipt"))
    gmail.deliver(message("Still in the inbox"))

    mail.move(receipt, "Receipts")

    assert mail.list_threads(folder="Receipts").thread_ids == [receipt]
    assert mail.list_threads(folder="Archive").thread_ids == [receipt]
    assert receipt not in mail.list_threads().thread_ids
    assert mail.list_threads(folder="No such label").thread_ids == []


def test_a_message_reads_as_the_other_adapters_read_it(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    sent = message("=?utf-8?q?Caf=C3=A9?=", List_Unsubscribe="<mailto:u@example.test>")
    sent.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="a.pdf")
    received = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    key = gmail.deliver(sent, labels=["INBOX", "UNREAD", "Receipts"], received=received)

    read = mail.get_message(key)

    assert (read.id, read.thread_id, read.folder, read.read) == (key, key, "INBOX", False)
    assert (read.subject, read.sender, read.to) == ("Café", "ann@example.test", gmail.email)
    assert read.body.strip() == "Body of =?utf-8?q?Caf=C3=A9?=."
    assert read.labels == frozenset({"Receipts"})
    assert read.message_id_header == sent["Message-ID"]
    assert read.date == received
    assert read.headers["list-unsubscribe"] == "<mailto:u@example.test>"
    assert read.headers["subject"] == "Café"
    assert read.has_attachment and not read.sent_by_me


def test_html_only_mail_is_read_as_text(gmail: GmailDouble, mail: GmailProvider) -> None:
    html = message("Newsletter")
    html.set_content("<p>Big <b>sale</b></p><script>x()</script><p>today</p>", subtype="html")

    assert mail.get_message(gmail.deliver(html)).body == "Big sale\ntoday"


def test_the_plain_part_is_preferred_to_the_html_part(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    both = message("Both")
    both.add_alternative("<p>In HTML</p>", subtype="html")

    assert mail.get_message(gmail.deliver(both)).body.strip() == "Body of Both."


def test_a_body_gmail_leaves_out_is_fetched_from_its_attachment_id(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    named = message("Named body")
    named.set_content("Text under a file name.", disposition="inline", filename="body.txt")

    assert mail.get_message(gmail.deliver(named)).body.strip() == "Text under a file name."
    assert len(gmail.calls("messages.attachments.get")) == 1


def test_labels_are_user_label_names_and_gmails_category_tabs(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    key = gmail.deliver(message("Sale"), labels=["INBOX", "CATEGORY_PROMOTIONS", "Shops"])

    assert mail.get_message(key).labels == frozenset({"Shops", "CATEGORY_PROMOTIONS"})


def test_sent_by_me_is_mail_from_the_accounts_own_address(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    mine = gmail.deliver(message("Note to self", sender="Me <ME@example.test>"), labels=["SENT"])

    read = mail.get_message(mine)

    assert read.sent_by_me and read.folder == "Sent" and read.read


def test_malformed_and_non_utf8_mail_is_read_without_a_crash(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    no_boundary = gmail.deliver(
        b"From: =?bogus?q?x?= <odd@example.test>\r\nSubject: caf\xe9\r\n"
        b"Message-ID: <odd@example.test>\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n"
    )
    latin = gmail.deliver(
        b"From: a@example.test\r\nSubject: x\r\nContent-Type: text/plain; charset=x-unknown\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nY2Fm6Q=\r\n!!\r\n"
    )

    odd = mail.get_message(no_boundary)
    assert odd.subject.startswith("caf") and odd.sender.endswith("<odd@example.test>")
    assert mail.get_message(latin).body.startswith("caf")


def test_a_message_gmail_does_not_know_is_not_found(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    with pytest.raises(MessageNotFound):
        mail.get_message("0123456789abcdef")
    with pytest.raises(MessageNotFound):
        mail.archive("<not-a-gmail-id@example.test>")  # Gmail: 400 Invalid id value
    with pytest.raises(MessageNotFound):
        mail.get_thread("0123456789abcdef")


def test_a_404_from_gmail_is_message_not_found(gmail: GmailDouble, mail: GmailProvider) -> None:
    key = gmail.deliver(message("Deleted meanwhile"))
    gmail.fail_next("messages.modify", 404)

    with pytest.raises(MessageNotFound):
        mail.mark_read(key)


def test_trashed_and_spam_messages_no_longer_exist(gmail: GmailDouble, mail: GmailProvider) -> None:
    trashed = gmail.deliver(message("Deleted"), labels=["TRASH"])
    gmail.deliver(message("Spam"), labels=["SPAM"])

    with pytest.raises(MessageNotFound):
        mail.get_message(trashed)
    with pytest.raises(MessageNotFound):
        mail.get_thread(trashed)
    assert mail.list_threads(folder="Archive").thread_ids == []


def test_list_labels_lists_the_users_labels_by_name(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    gmail.create_label("Receipts")
    gmail.create_label("Travel/2026")

    assert mail.list_labels() == ["Receipts", "Travel/2026"]


def test_is_starred_reads_gmails_starred_label(gmail: GmailDouble, mail: GmailProvider) -> None:
    key = gmail.deliver(message("Keep this"))
    read = mail.get_message(key)
    assert not mail.is_starred(read)

    gmail.set_labels(key, add=["STARRED"])

    assert mail.is_starred(read)
    assert gmail.calls("messages.get")[-1].param("format") == "minimal"


# Changing --------------------------------------------------------------------------------
def test_archive_takes_the_inbox_label_off(gmail: GmailDouble, mail: GmailProvider) -> None:
    key = gmail.deliver(message("Quarterly report"))

    mail.archive(key)
    mail.archive(key)  # twice is one archive

    assert gmail.labels_of(key) == {"UNREAD"}
    assert mail.get_message(key).folder == "Archive"


def test_mark_read_takes_the_unread_label_off(gmail: GmailDouble, mail: GmailProvider) -> None:
    key = gmail.deliver(message("Invoice"))

    mail.mark_read(key)

    assert gmail.labels_of(key) == {"INBOX"}
    assert mail.get_message(key).read


def test_move_puts_the_folders_label_on_and_takes_the_inbox_off(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    key = gmail.deliver(message("Receipt"))

    mail.move(key, "Receipts 2026")

    assert gmail.labels_of(key) == {"UNREAD", "Receipts 2026"}
    mail.move(key, "INBOX")
    assert "INBOX" in gmail.labels_of(key)


def test_labels_are_created_once_and_found_whatever_their_case(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    gmail.create_label("Receipts")
    keys = [gmail.deliver(message(f"Note {n}")) for n in range(4)]

    mail.label(keys[0], "receipts")
    mail.label(keys[1], "RECEIPTS")
    mail.label(keys[2], "Processed")
    mail.label(keys[3], "processed")

    assert [r.body["name"] for r in gmail.calls("labels.create")] == ["Processed"]
    assert len(gmail.calls("labels.list")) == 1  # the id map is kept per provider
    assert gmail.label_names() == ["Processed", "Receipts"]
    assert [gmail.labels_of(key) - {"INBOX", "UNREAD"} for key in keys] == [
        {"Receipts"},
        {"Receipts"},
        {"Processed"},
        {"Processed"},
    ]


def test_a_label_another_job_created_meanwhile_is_used(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    key = gmail.deliver(message("Race"))
    mail.list_labels()  # the provider's id map, read before the label exists
    gmail.create_label("Processed")

    mail.label(key, "Processed")  # Gmail answers 409 to the create: listed again

    assert gmail.labels_of(key) == {"INBOX", "UNREAD", "Processed"}


def test_modify_many_uses_batch_modify_in_chunks_of_a_thousand(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    keys = [
        gmail.deliver(f"From: a@example.test\r\nSubject: Bulk {n}\r\n\r\nBulk.\r\n".encode())
        for n in range(2300)
    ]
    done = gmail.create_label("Done")

    mail.modify_many(keys, add_label_ids=[done], remove_label_ids=["INBOX", "UNREAD"])

    assert [len(r.body["ids"]) for r in gmail.calls("messages.batchModify")] == [1000, 1000, 300]
    assert all(gmail.labels_of(key) == {"Done"} for key in keys)
    assert gmail.calls("messages.modify") == []


# Sending ---------------------------------------------------------------------------------
def test_send_sends_the_composed_mime_and_returns_gmails_id(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    sent_id = mail.send(
        OutgoingMail(to="bob@example.test", subject="Hello", body="Hi!", html="<p>Hi!</p>")
    )

    (sent,) = gmail.sent
    assert sent.id == sent_id and gmail.labels_of(sent_id) == {"SENT"}
    mime = sent_mime(gmail)
    assert (mime["From"], mime["To"], mime["Subject"]) == (gmail.email, "bob@example.test", "Hello")
    plain = mime.get_body(preferencelist=("plain",))
    assert plain is not None and plain.get_content().strip() == "Hi!"
    assert "threadId" not in gmail.calls("messages.send")[0].body


def test_a_reply_carries_the_thread_id_in_reply_to_and_references(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    root = message("Question", minutes_ago=20)
    gmail.deliver(root)
    parent = message("Re: Question", minutes_ago=10, reply_to=root)
    parent_id = gmail.deliver(parent)

    sent_id = mail.send(
        OutgoingMail(
            to="ann@example.test",
            subject="Re: Question",
            body="Yes.",
            in_reply_to=parent["Message-ID"],
        )
    )

    thread = gmail.message(parent_id).thread_id
    assert gmail.calls("messages.send")[0].body["threadId"] == thread
    mime = sent_mime(gmail)
    assert mime["In-Reply-To"] == parent["Message-ID"]
    assert mime["References"].split() == [root["Message-ID"], parent["Message-ID"]]
    assert gmail.message(sent_id).thread_id == thread
    assert [m.subject for m in mail.get_thread(thread)][-1] == "Re: Question"


def test_sending_twice_with_one_key_sends_once(gmail: GmailDouble, mail: GmailProvider) -> None:
    outgoing = OutgoingMail(to="bob@example.test", subject="Hi", body="?", idempotency_key="k-1")

    first = mail.send(outgoing)
    later_run = GmailProvider(gmail.grant(), gmail.settings())
    second = later_run.send(outgoing)
    later_run.close()

    assert first == second and len(gmail.sent) == 1
    assert sent_mime(gmail)["Message-ID"] == "<k-1@jobbridge>"


def test_a_send_the_database_did_not_record_is_found_in_sent_by_its_message_id(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    """A run that died after Gmail accepted the mail and before the record said so."""
    from bridge.store.db import session_scope
    from tasks.models import SentMail

    outgoing = OutgoingMail(to="bob@example.test", subject="Hi", body="?", idempotency_key="k-1")
    first = mail.send(outgoing)
    with session_scope() as session:
        session.query(SentMail).delete()
    second = mail.send(outgoing)

    assert first == second and len(gmail.sent) == 1
    (search, _) = gmail.calls("messages.list")
    assert search.param("q") == "rfc822msgid:k-1@jobbridge in:sent"
    assert search.param("includeSpamTrash") == "false"


# Refusals --------------------------------------------------------------------------------
def test_429_is_retry_later_after_gmails_retry_after(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    gmail.fail_next("threads.list", 429, retry_after=17)

    with pytest.raises(RetryLater) as raised:
        mail.list_threads()

    assert raised.value.retry_after == 17
    assert "users.threads.list" in str(raised.value)


@pytest.mark.parametrize("reason", ["rateLimitExceeded", "userRateLimitExceeded"])
def test_403_rate_limit_is_retry_later(
    gmail: GmailDouble, mail: GmailProvider, reason: str
) -> None:
    key = gmail.deliver(message("Busy"))
    gmail.fail_next("messages.modify", 403, reason=reason, retry_after=5)

    with pytest.raises(RetryLater) as raised:
        mail.archive(key)

    assert raised.value.retry_after == 5


def test_500_is_retry_later_with_a_growing_default_wait(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    gmail.fail_next("threads.list", 500, times=2)

    waits = []
    for _ in range(2):
        with pytest.raises(RetryLater) as raised:
            mail.list_threads()
        waits.append(raised.value.retry_after)

    assert 0 < waits[0] < waits[1]
    assert len(gmail.calls("threads.list")) == 2  # the client itself retried nothing
    assert mail.list_threads().thread_ids == []


def test_a_403_that_is_no_rate_limit_is_permanent(gmail: GmailDouble, mail: GmailProvider) -> None:
    gmail.fail_next("threads.list", 403, reason="insufficientPermissions", message="No scope")

    with pytest.raises(PermanentError, match=r"users\.threads\.list.*HTTP 403 No scope"):
        mail.list_threads()


def test_another_4xx_is_permanent_naming_the_operation_and_gmails_message(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    gmail.fail_next("messages.send", 400, reason="invalidArgument", message="Invalid To header")

    with pytest.raises(PermanentError, match=r"users\.messages\.send.*Invalid To header") as raised:
        mail.send(OutgoingMail(to="bob@example.test", subject="x", body="y"))
    assert not isinstance(raised.value, RetryLater) and gmail.sent == []


def test_an_expired_access_token_is_refreshed(gmail: GmailDouble, mail: GmailProvider) -> None:
    key = gmail.deliver(message("Later"))
    mail.get_message(key)
    gmail.expire_access_tokens()

    assert mail.get_message(key).subject == "Later"
    assert len(gmail.calls("token")) == 2
    assert [r.status for r in gmail.calls("messages.get")] == [200, 401, 200]


def test_a_revoked_refresh_token_disconnects_the_account_once(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    refused: list[str] = []
    provider = GmailProvider(gmail.grant(on_refused=refused.append), gmail.settings())
    provider.list_threads()
    gmail.revoke()

    with pytest.raises(AccountDisconnected) as raised:
        provider.list_threads()

    text = str(raised.value)
    assert "accounts connect google me@example.test" in text and "revoked" in text
    assert refused == [text]
    assert len(gmail.calls("token")) == 2  # one refresh refused, no retry loop
    assert gmail.refresh_token not in text and gmail.client_secret not in text
    provider.close()


def test_a_refresh_token_refused_at_the_first_call_disconnects_the_account(
    gmail: GmailDouble,
) -> None:
    refused: list[str] = []
    grant = gmail.grant(refresh_token="1//unknown", on_refused=refused.append)

    with pytest.raises(AccountDisconnected):
        GmailProvider(grant, gmail.settings()).get_message("0123456789abcdef")

    assert len(refused) == 1 and gmail.calls("messages.get") == []


def test_a_wrong_client_secret_is_permanent_and_says_which_settings(
    gmail: GmailDouble,
) -> None:
    grant = gmail.grant()
    wrong = type(grant)(grant.email, grant.client_id, "wrong-secret", grant.refresh_token)

    with pytest.raises(PermanentError, match="GOOGLE_CLIENT_SECRET") as raised:
        GmailProvider(wrong, gmail.settings()).list_labels()

    assert not isinstance(raised.value, AccountDisconnected)
    assert "wrong-secret" not in str(raised.value) and grant.refresh_token not in str(raised.value)


# The double itself -------------------------------------------------------------------------
def test_every_request_keeps_to_the_discovery_document(
    gmail: GmailDouble, mail: GmailProvider
) -> None:
    key = gmail.deliver(message("All of it"))
    mail.list_threads(unread_only=True, exclude_labels=["x"], after=datetime.now(UTC))
    mail.get_thread(key)
    mail.label(key, "Seen")
    mail.move(key, "Kept")
    mail.is_starred(mail.get_message(key))
    mail.modify_many([key], remove_label_ids=["UNREAD"])
    mail.send(OutgoingMail(to="a@example.test", subject="Hi", body=".", idempotency_key="k"))

    assert gmail.violations == []
    assert all(r.status < 400 for r in gmail.requests)
    assert list(SCOPES) == ["https://www.googleapis.com/auth/gmail.modify"]


def test_the_double_refuses_what_the_discovery_document_does_not_allow(
    gmail: GmailDouble,
) -> None:
    token = gmail.issue_access_token()
    bad = [
        ("GET", "gmail/v1/users/me/threads?labelId=INBOX", None),  # undeclared parameter
        ("GET", "gmail/v1/users/me/messages/abc?format=everything", None),  # not an enum value
        ("POST", "gmail/v1/users/me/messages/abc/modify", b'{"addLabels": ["X"]}'),
        ("GET", "gmail/v1/users/me/mailboxes", None),  # no such method
    ]
    for verb, path, body in bad:
        request = Request(gmail.url + path, data=body, method=verb)
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Content-Type", "application/json")
        with pytest.raises(HTTPError) as refused:
            urlopen(request, timeout=10)
        assert refused.value.code == 400

    assert len(gmail.violations) == 4
    assert "labelId" in gmail.violations[0] and "addLabels" in gmail.violations[2]
    gmail.violations.clear()


def test_a_provider_in_another_process_reaches_the_double_through_its_settings(
    gmail: GmailDouble,
) -> None:
    # As a Celery worker would: OAuthSettings read from the variables gmail.env() names.
    gmail.create_label("From afar")
    script = (
        "import os, sys\n"
        "from tasks.mail.gmail import GmailProvider\n"
        "from tasks.mail.oauth_grant import OAuthGrant\n"
        "from tasks.mail.oauth_settings import load_oauth_settings\n"
        "s = load_oauth_settings()\n"
        "secret = s.google_client_secret.get_secret_value()\n"
        "token = os.environ['REFRESH_TOKEN']\n"
        "grant = OAuthGrant(sys.argv[1], s.google_client_id, secret, token)\n"
        "print(GmailProvider(grant, s).list_labels())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, gmail.email],
        env={**os.environ, **gmail.env(), "REFRESH_TOKEN": gmail.refresh_token},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['From afar']"
    assert len(gmail.calls("labels.list")) == 1
