"""The AI port: static rules tried first, and the offline, deterministic implementation."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tasks.ai import AI, CleanDecision, OfflineAI, default_ai
from tasks.ai.static_rules import (
    calendar_event_time,
    gmail_category,
    has_unsubscribe_link,
    is_calendar_invite,
    is_newsletter,
    is_receipt,
    static_category,
)
from tasks.mail.port import MailMessage

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def mail(**fields: Any) -> MailMessage:
    """A plain message from a person, changed by `fields`."""
    values: dict[str, Any] = {
        "id": "m1",
        "thread_id": "t1",
        "sender": "Alice Smith <alice@example.org>",
        "to": "me@example.test",
        "subject": "Hello",
        "body": "",
        "folder": "INBOX",
        "read": False,
        "date": NOW - timedelta(days=30),
    }
    values.update(fields)
    return MailMessage(**values)


def offline() -> OfflineAI:
    return OfflineAI(now=lambda: NOW)


# static rules: newsletters -------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {"list-unsubscribe": "<https://news.example.com/u?id=1>"},
        {"list-id": "Weekly <weekly.example.com>"},
        {"precedence": "bulk"},
        {"precedence": "List"},
    ],
)
def test_list_headers_or_bulk_precedence_mark_a_newsletter(headers: dict[str, str]) -> None:
    assert is_newsletter(mail(headers=headers))


@pytest.mark.parametrize(
    "sender",
    [
        "Example News <news@example.com>",
        "newsletter@example.com",
        "Digest <digest@example.com>",
        "team-newsletter@example.com",
        "Writer <writer@substack.com>",
        "updates@news.example.com",
    ],
)
def test_newsletter_sender_addresses_mark_a_newsletter(sender: str) -> None:
    assert is_newsletter(mail(sender=sender))


def test_a_no_reply_sender_is_a_newsletter_only_with_marketing_words() -> None:
    assert is_newsletter(mail(sender="noreply@shop.example", subject="Summer sale: 30% off"))
    assert not is_newsletter(mail(sender="noreply@bank.example", subject="Reset your password"))


def test_mail_from_a_person_is_not_a_newsletter() -> None:
    assert not is_newsletter(mail(subject="Lunch?", body="Free tomorrow at noon?"))


# static rules: receipts ----------------------------------------------------------
@pytest.mark.parametrize(
    "subject",
    ["Your receipt from Cafe", "Invoice INV-2041", "Order confirmation #1234", "Payment received"],
)
def test_receipt_words_in_the_subject_mark_a_receipt(subject: str) -> None:
    assert is_receipt(mail(subject=subject))


@pytest.mark.parametrize(
    "body", ["Total: $42.00", "Amount paid: 19,90 €", "Total EUR 15.00", "Subtotal 12 GBP"]
)
def test_a_total_with_a_currency_in_the_body_marks_a_receipt(body: str) -> None:
    assert is_receipt(mail(subject="Thanks!", body=body))


def test_a_price_in_a_promotion_is_not_a_receipt() -> None:
    assert not is_receipt(mail(subject="Big sale", body="Save $20 on shoes this weekend."))


def test_a_receipt_from_a_mailing_list_is_categorized_as_a_receipt() -> None:
    # Archiving a receipt by mistake loses it; keeping a newsletter costs nothing.
    message = mail(subject="Your receipt", headers={"list-unsubscribe": "<mailto:u@x.com>"})
    assert static_category(message) == "Receipt"


def test_static_category_is_none_for_ordinary_mail() -> None:
    assert static_category(mail(subject="Lunch?", body="Free tomorrow?")) is None


# static rules: unsubscribe links -------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"list-unsubscribe": "<https://example.com/u>"}, "Hi"),
        ({}, "Not interested? Unsubscribe: https://example.com/u?id=1"),
        ({}, "Manage mail: https://example.com/unsubscribe/abc"),
        ({}, "Unsubscribe | Update preferences"),
        ({}, "If you no longer wish to hear from us, click here to unsubscribe."),
    ],
)
def test_an_unsubscribe_header_url_or_link_text_is_an_unsubscribe_link(
    headers: dict[str, str], body: str
) -> None:
    assert has_unsubscribe_link(mail(headers=headers, body=body))


def test_unsubscribe_mentioned_in_prose_is_not_an_unsubscribe_link() -> None:
    assert not has_unsubscribe_link(mail(body="Could you unsubscribe me from the gym list?"))


# static rules: calendar ----------------------------------------------------------
@pytest.mark.parametrize(
    "message",
    [
        mail(body="BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20261201T090000Z\nEND:VEVENT"),
        mail(headers={"content-type": 'text/calendar; method="REQUEST"'}),
        mail(subject="Invitation: Planning @ Tue Dec 1, 2026 9am (UTC)"),
        mail(subject="Updated invitation: Planning"),
    ],
)
def test_calendar_invites_are_recognised_by_body_content_type_or_subject(
    message: MailMessage,
) -> None:
    assert is_calendar_invite(message)


def test_a_mail_about_a_meeting_is_not_a_calendar_invite() -> None:
    assert not is_calendar_invite(mail(subject="Re: the invitation list", body="Looks good."))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("DTSTART:20261201T090000Z", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        (
            "DTSTART;TZID=Europe/Paris:20261201T090000",
            datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
        ),
        ("DTSTART;VALUE=DATE:20261201", datetime(2026, 12, 1, tzinfo=UTC)),
        ("DTSTART;TZID=Nowhere/Atlantis:20261201T0900", datetime(2026, 12, 1, 9, tzinfo=UTC)),
        # iCalendar folds long lines (CRLF + space).
        ("DTSTART;TZID=UTC:2026\r\n 1201T090000", datetime(2026, 12, 1, 9, tzinfo=UTC)),
    ],
)
def test_event_time_is_read_from_an_icalendar_dtstart_in_utc(body: str, expected: datetime) -> None:
    assert calendar_event_time(mail(body=f"BEGIN:VEVENT\r\n{body}\r\nEND:VEVENT")) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "When: Tuesday, December 1, 2026 9:30 PM-10:00 PM (UTC)",
            datetime(2026, 12, 1, 21, 30, tzinfo=UTC),
        ),
        ("When: 1 Dec 2026 14:30", datetime(2026, 12, 1, 14, 30, tzinfo=UTC)),
        ("When: 2026-12-01 09:00", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("when: Dec 1st, 2026", datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_event_time_is_read_from_a_when_line(line: str, expected: datetime) -> None:
    assert calendar_event_time(mail(body=f"You are invited.\n{line}\nWhere: Room 4")) == expected


@pytest.mark.parametrize(
    "body", ["See you soon.", "When: whenever suits you", "When: February 30, 2026 9am"]
)
def test_event_time_is_none_when_no_date_can_be_read(body: str) -> None:
    assert calendar_event_time(mail(body=body)) is None


# static rules: Gmail categories --------------------------------------------------
@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("CATEGORY_PROMOTIONS", "Promotions"),
        ("CATEGORY_SOCIAL", "Social"),
        ("CATEGORY_UPDATES", "Updates"),
        ("CATEGORY_FORUMS", "Forums"),
        ("CATEGORY_PERSONAL", None),
        ("IMPORTANT", None),
    ],
)
def test_gmail_category_names_the_bulk_mail_tabs_only(label: str, expected: str | None) -> None:
    assert gmail_category(mail(labels=frozenset({"INBOX", label}))) == expected


def test_gmail_category_of_a_message_in_two_tabs_is_always_the_first_tab() -> None:
    labels = frozenset({"CATEGORY_UPDATES", "CATEGORY_PROMOTIONS"})
    assert gmail_category(mail(labels=labels)) == "Promotions"


# OfflineAI.categorize_sender -----------------------------------------------------
def test_static_rules_decide_the_category_before_keywords() -> None:
    bulletin = mail(
        subject="Project meeting agenda", body="Team agenda.", headers={"list-id": "team"}
    )
    assert offline().categorize_sender("list@example.com", [bulletin]) == "Newsletter"


def test_the_most_frequent_static_category_wins() -> None:
    newsletter = mail(headers={"list-id": "shop"})
    receipt = mail(subject="Your receipt")
    category = offline().categorize_sender("shop@example.com", [newsletter, receipt, newsletter])
    assert category == "Newsletter"


@pytest.mark.parametrize(
    ("sender", "subject", "body", "expected"),
    [
        ("deals@shop.example", "Shop now: 50% off shoes", "Limited time offer.", "Marketing"),
        (
            "noreply@bank.example",
            "Security alert",
            "A new sign-in to your account.",
            "Notification",
        ),
        ("Bo <bo@gmail.com>", "Dinner this weekend?", "Are you free for dinner?", "Personal"),
        ("Bo <bo@acme.example>", "Project meeting agenda", "Agenda for the review.", "Work"),
    ],
)
def test_keywords_categorize_senders_no_static_rule_covers(
    sender: str, subject: str, body: str, expected: str
) -> None:
    message = mail(sender=sender, subject=subject, body=body)
    assert offline().categorize_sender(sender, [message]) == expected


def test_mail_written_by_a_machine_is_never_personal_or_work() -> None:
    message = mail(
        sender="noreply@restaurant.example", subject="Team dinner", body="Your team dinner."
    )
    assert offline().categorize_sender("noreply@restaurant.example", [message]) == "Notification"


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [mail(subject="Hello", body="Hi.")],
        # One Personal and one Work signal: a tie is a coin toss, not an answer.
        [mail(subject="Budget", body=""), mail(subject="Birthday", body="")],
    ],
)
def test_a_sender_without_clear_evidence_is_left_uncategorized(
    messages: list[MailMessage],
) -> None:
    assert offline().categorize_sender("alice@example.org", messages) is None


# OfflineAI.decide_clean ----------------------------------------------------------
def automated(**fields: Any) -> MailMessage:
    return mail(sender="GitHub <noreply@github.com>", subject="[repo] CI passed", **fields)


def test_old_automated_mail_never_answered_is_done() -> None:
    decision = offline().decide_clean([automated()], None)
    assert decision.done
    assert "automated" in decision.reason


def test_recent_automated_mail_is_kept() -> None:
    assert not offline().decide_clean([automated(date=NOW - timedelta(hours=2))], None).done


def test_automated_mail_without_a_date_is_done() -> None:
    # The clean producer only hands over threads already older than the user's daysOld.
    assert offline().decide_clean([automated(date=None)], None).done


def test_a_thread_i_replied_to_is_kept() -> None:
    reply = mail(sender="me@example.test", sent_by_me=True, id="m2")
    assert not offline().decide_clean([automated(), reply], None).done


def test_a_thread_written_by_a_person_is_kept() -> None:
    decision = offline().decide_clean([mail(body="Can you review my draft?")], None)
    assert not decision.done
    assert "person" in decision.reason


def test_an_empty_thread_is_kept() -> None:
    assert not offline().decide_clean([], None).done


def test_an_instruction_to_keep_a_sender_overrides_the_default() -> None:
    decision = offline().decide_clean([automated()], "Keep anything from GitHub.")
    assert decision == CleanDecision(False, 'Your instructions say: "Keep anything from GitHub"')


def test_an_instruction_to_archive_newsletters_marks_a_recent_one_done() -> None:
    newsletter = mail(sender="news@paper.example", date=NOW - timedelta(hours=1))
    assert offline().decide_clean([newsletter], "Please archive newsletters.").done


def test_an_instruction_applies_only_when_everything_it_names_matches() -> None:
    newsletter = mail(sender="news@paper.example", date=NOW - timedelta(hours=1))
    assert not offline().decide_clean([newsletter], "archive newsletters from acme").done


def test_keep_wins_when_instructions_both_keep_and_archive_a_thread() -> None:
    newsletter = mail(sender="news@paper.example")
    instructions = "Archive newsletters, but keep anything from paper.example"
    decision = offline().decide_clean([newsletter], instructions)
    assert decision == CleanDecision(
        False, 'Your instructions say: "keep anything from paper.example"'
    )


def test_a_negated_archive_instruction_is_a_keep() -> None:
    assert not offline().decide_clean([automated()], "Don't archive notifications").done


def test_an_instruction_naming_no_sender_or_topic_is_ignored() -> None:
    # "everything" read literally would archive the whole inbox: fall back to the default.
    decision = offline().decide_clean([mail(body="Can you review my draft?")], "Archive everything")
    assert not decision.done


# OfflineAI.summarize -------------------------------------------------------------
def test_the_summary_is_the_first_two_sentences_without_greeting_or_sign_off() -> None:
    body = (
        "Hi Bob,\n\nThe quarterly report is attached. Revenue is up 12% on last year. "
        "Let me know what you think.\n\nBest,\nAlice\n"
    )
    summary = offline().summarize(mail(body=body))
    assert summary == "The quarterly report is attached. Revenue is up 12% on last year."


def test_the_summary_leaves_out_quoted_text_links_and_signatures() -> None:
    body = (
        "> Did you ship it?\n"
        "Shipped this morning, see https://ci.example.com/run/42 for the logs.\n"
        "-- \nAlice Smith, Example Corp\n"
        "On Mon, 1 Jun 2026, Bob wrote:\n> earlier text\n"
    )
    assert offline().summarize(mail(body=body)) == "Shipped this morning, see for the logs."


def test_the_summary_is_cut_at_a_word_within_280_characters() -> None:
    body = "The committee reviewed " + "every single proposal " * 30 + "carefully."
    summary = offline().summarize(mail(body=body))
    kept = summary.removesuffix("…")
    assert len(summary) <= 280
    assert summary.endswith("…")
    assert body.startswith(kept + " ")  # ends on a whole word


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   \n\n",
        "Hi Bob,\n\nThanks!\n",
        "View this email in your browser\nUnsubscribe\nhttps://example.com/x\n© 2026 Shop",
    ],
)
def test_an_empty_or_boilerplate_body_has_no_summary(body: str) -> None:
    assert offline().summarize(mail(body=body)) == ""


def test_html_content_is_summarised_as_text() -> None:
    body = "<html><body><p>Hello!</p><p>Your parcel &amp; its box shipped today.</p></body></html>"
    assert offline().summarize(mail(body=body)) == "Your parcel & its box shipped today."


def test_a_sentence_after_an_inline_greeting_starts_the_summary_capitalised() -> None:
    body = "Good morning all, the build is green again. Deploying at noon."
    assert offline().summarize(mail(body=body)) == "The build is green again. Deploying at noon."


# the port --------------------------------------------------------------------------
def test_the_default_ai_is_the_offline_one_and_satisfies_the_port() -> None:
    ai: AI = default_ai()
    assert isinstance(ai, OfflineAI)
    assert isinstance(ai, AI)


def test_the_offline_ai_gives_the_same_answers_to_the_same_questions() -> None:
    thread = [automated(), mail(id="m2", subject="Your receipt", body="Total: $5. Thanks.")]
    first, second = offline(), offline()
    assert first.categorize_sender("x@example.com", thread) == second.categorize_sender(
        "x@example.com", thread
    )
    assert first.decide_clean(thread, "keep receipts") == second.decide_clean(
        thread, "keep receipts"
    )
    assert first.summarize(thread[1]) == second.summarize(thread[1])


def test_a_clean_decision_cannot_be_changed_after_it_is_made() -> None:
    decision = CleanDecision(True, "old")
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.done = False  # type: ignore[misc]
