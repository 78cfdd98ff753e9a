"""Cheap, pure rules tried before any AI call (categorize and clean.process).

They look only at one MailMessage: headers, sender address, labels, subject and body.
Each rule errs the way that costs least: a receipt wrongly called a newsletter could be
archived, so receipts win over newsletters; a personal mail mentioning "unsubscribe" in
passing must not count as an unsubscribe link.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parseaddr
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tasks.mail.port import MailMessage

NEWSLETTER = "Newsletter"
RECEIPT = "Receipt"

# Gmail's tab labels -> the names clean.process reasons about. CATEGORY_PERSONAL is left
# out on purpose: "has a Gmail category" must mean "bulk mail", never the Primary tab.
GMAIL_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("CATEGORY_PROMOTIONS", "Promotions"),
    ("CATEGORY_SOCIAL", "Social"),
    ("CATEGORY_UPDATES", "Updates"),
    ("CATEGORY_FORUMS", "Forums"),
)

_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})
_NEWSLETTER_LOCAL_PARTS = frozenset(
    {"newsletter", "newsletters", "news", "digest", "weekly", "bulletin"}
)
# Newsletter platforms whose sending domains carry no other kind of mail.
_NEWSLETTER_DOMAINS = ("substack.com", "beehiiv.com")
_RECEIPT_LOCAL_PARTS = frozenset(
    {"receipt", "receipts", "invoice", "invoices", "billing", "payments", "orders"}
)
_NO_REPLY = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|notifications?|notify|alerts?|"
    r"mailer-daemon|postmaster|bounces?|automated|auto-confirm)(?:[-+_.].*)?$"
)
MARKETING_WORDS = re.compile(
    r"\b(?:sale|deals?|offers?|discounts?|promo(?:tion)?s?|coupons?|free shipping|"
    r"limited time|shop now|buy now|exclusive|new arrivals|\d{1,2}\s?% off)\b",
    re.IGNORECASE,
)

_RECEIPT_SUBJECT = re.compile(
    r"\b(?:receipts?|invoices?|order confirm\w*|your order|payments?|purchase confirm\w*|"
    r"billing statement|order\s?#\s?\w+)\b",
    re.IGNORECASE,
)
# In a body "payment" alone is too common (fintech news, reminders), so only phrases.
_RECEIPT_BODY = re.compile(
    r"\b(?:receipt|invoice|order confirmation|order number|payment received|"
    r"thank you for your (?:order|purchase|payment))\b",
    re.IGNORECASE,
)
_CURRENCY_CODE = r"(?:usd|eur|gbp|chf|cad|aud|jpy|inr)"
_MONEY = (
    rf"(?:[$€£¥₹]\s?\d[\d.,]*|\b{_CURRENCY_CODE}\s?\d[\d.,]*|"
    rf"\d[\d.,]*\s?(?:[$€£¥₹]|{_CURRENCY_CODE}\b))"
)
_TOTAL_WITH_MONEY = re.compile(
    rf"\b(?:total|subtotal|amount(?: due| paid| charged)?|charged|paid)\b[^\n]{{0,25}}?{_MONEY}",
    re.IGNORECASE,
)

_URL = re.compile(r"(?:https?://|mailto:|www\.)\S+", re.IGNORECASE)
_UNSUBSCRIBE_WORD = re.compile(r"unsubscribe|opt[- ]?out", re.IGNORECASE)
# Link text as it survives HTML-to-text extraction ("Unsubscribe", "Click here to
# unsubscribe"), where the href itself is lost. Someone asking "can you unsubscribe me?"
# in a sentence does not match: these are calls to action, not prose.
_UNSUBSCRIBE_LINK_TEXT = re.compile(r"^\W*(?:unsubscribe|opt[- ]?out)(?:\W*$|\s*[|·•])", re.I)
_UNSUBSCRIBE_ACTION = re.compile(
    r"(?:click|tap) here to (?:unsubscribe|opt[- ]?out)|"
    r"unsubscribe (?:here|from (?:this|these|our|all)\b)|"
    r"(?:^|[.!]\s*)\W*to unsubscribe\b|you (?:can|may) (?:unsubscribe|opt[- ]?out)",
    re.IGNORECASE,
)

_ICALENDAR = re.compile(r"BEGIN:(?:VCALENDAR|VEVENT)", re.IGNORECASE)
_INVITE_SUBJECT = re.compile(
    r"^\s*(?:updated\s+)?invitation(?:\s+updated)?\s*(?::|from\b)", re.IGNORECASE
)
_DTSTART = re.compile(
    r"^DTSTART(?P<params>;[^:\r\n]*)?:(?P<date>\d{8})(?:T(?P<time>\d{4}(?:\d{2})?)(?P<z>Z)?)?",
    re.IGNORECASE | re.MULTILINE,
)
_TZID = re.compile(r"TZID=\"?(?P<zone>[^;:\"]+)", re.IGNORECASE)
_WHEN_LINE = re.compile(r"^\s*When\s*:\s*(?P<text>.+)$", re.IGNORECASE | re.MULTILINE)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_MONTH = r"(?P<month>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_ISO_DATE = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})(?:[T ](?P<hour>\d{1,2}):(?P<minute>\d{2}))?"
)
_MONTH_DAY_YEAR = re.compile(
    rf"\b{_MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<year>\d{{4}})", re.IGNORECASE
)
_DAY_MONTH_YEAR = re.compile(
    rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH},?\s+(?P<year>\d{{4}})", re.IGNORECASE
)
_CLOCK_TIME = re.compile(
    r"\b(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<ampm>[ap])\.?m\b|"
    r"\b(?P<hour24>\d{1,2}):(?P<minute24>\d{2})\b",
    re.IGNORECASE,
)


def sender_address(message: MailMessage) -> str:
    """The sender's bare address, lower-cased ("Shop <News@Shop.com>" -> "news@shop.com")."""
    return parseaddr(message.sender)[1].strip().lower()


def _local_and_domain(message: MailMessage) -> tuple[str, str]:
    local, _, domain = sender_address(message).partition("@")
    # Sub-addressing ("invoice+statements@") keeps the mailbox's meaning in the base.
    return local.split("+", 1)[0], domain


def _header(message: MailMessage, name: str) -> str:
    return message.headers.get(name, "").strip()


def is_bulk_mail(message: MailMessage) -> bool:
    """Headers only mailing-list software and bulk senders set."""
    return bool(
        _header(message, "list-unsubscribe")
        or _header(message, "list-id")
        or _header(message, "precedence").lower() in _BULK_PRECEDENCE
    )


def is_no_reply_sender(message: MailMessage) -> bool:
    return bool(_NO_REPLY.match(_local_and_domain(message)[0]))


def is_automated(message: MailMessage) -> bool:
    """Sent by a machine: bulk headers, Auto-Submitted (RFC 3834) or a no-reply mailbox."""
    auto_submitted = _header(message, "auto-submitted").lower()
    return (
        is_bulk_mail(message)
        or auto_submitted not in {"", "no"}  # RFC 3834: "no" means a human sent it
        or is_no_reply_sender(message)
    )


def has_marketing_words(text: str) -> bool:
    return bool(MARKETING_WORDS.search(text))


def is_newsletter(message: MailMessage) -> bool:
    if is_bulk_mail(message):
        return True
    local, domain = _local_and_domain(message)
    if local in _NEWSLETTER_LOCAL_PARTS or "newsletter" in local:
        return True
    if domain.startswith(("news.", "newsletter.")) or domain.endswith(_NEWSLETTER_DOMAINS):
        return True
    # A no-reply mailbox alone is as likely a password reset; marketing words tip it.
    return is_no_reply_sender(message) and has_marketing_words(message.subject)


def is_receipt(message: MailMessage) -> bool:
    local, _ = _local_and_domain(message)
    return bool(
        local in _RECEIPT_LOCAL_PARTS
        or _RECEIPT_SUBJECT.search(message.subject)
        or _RECEIPT_BODY.search(message.body)
        or _TOTAL_WITH_MONEY.search(message.body)
    )


def has_unsubscribe_link(message: MailMessage) -> bool:
    if _header(message, "list-unsubscribe"):
        return True
    for line in message.body.splitlines():
        if not _UNSUBSCRIBE_WORD.search(line):
            continue
        urls = _URL.findall(line)
        if any(_UNSUBSCRIBE_WORD.search(url) for url in urls):
            return True
        if urls or _UNSUBSCRIBE_LINK_TEXT.match(line) or _UNSUBSCRIBE_ACTION.search(line):
            return True
    return False


def is_calendar_invite(message: MailMessage) -> bool:
    return bool(
        _ICALENDAR.search(message.body)
        or "text/calendar" in _header(message, "content-type").lower()
        or _INVITE_SUBJECT.match(message.subject)
    )


def calendar_event_time(message: MailMessage) -> datetime | None:
    """When the event starts (aware UTC), from an iCalendar DTSTART or a "When:" line.

    Zone names in "When:" lines are not interpreted (read as UTC): the caller only asks
    "past or future?", which hours of error change only for events within a day of now.
    """
    # iCalendar folds long lines as CRLF + one space; unfold before matching.
    body = re.sub(r"\r?\n[ \t]", "", message.body)
    match = _DTSTART.search(body)
    if match:
        return _ical_time(match)
    when = _WHEN_LINE.search(body)
    return _when_time(when.group("text")) if when else None


def _ical_time(match: re.Match[str]) -> datetime | None:
    day, clock = match.group("date"), match.group("time") or "0000"
    try:
        local = datetime.strptime(day + clock.ljust(6, "0"), "%Y%m%d%H%M%S")
    except ValueError:
        return None
    zone = _TZID.search(match.group("params") or "")
    if match.group("z") or not zone:
        # No TZID is a "floating" time; UTC is as good a guess as any for past/future.
        return local.replace(tzinfo=UTC)
    try:
        return local.replace(tzinfo=ZoneInfo(zone.group("zone").strip())).astimezone(UTC)
    except (ZoneInfoNotFoundError, ValueError):
        return local.replace(tzinfo=UTC)


def _when_time(text: str) -> datetime | None:
    iso = _ISO_DATE.search(text)
    if iso:
        hour, minute = int(iso.group("hour") or 0), int(iso.group("minute") or 0)
        return _utc(
            int(iso.group("year")), int(iso.group("month")), int(iso.group("day")), hour, minute
        )
    named = _MONTH_DAY_YEAR.search(text) or _DAY_MONTH_YEAR.search(text)
    if not named:
        return None
    hour, minute = _clock(text[named.end() :])
    month = _MONTHS[named.group("month").lower()[:3]]
    return _utc(int(named.group("year")), month, int(named.group("day")), hour, minute)


def _clock(text: str) -> tuple[int, int]:
    """The first time of day in `text` ("9am", "9:30 PM", "14:30"), else midnight."""
    match = _CLOCK_TIME.search(text)
    if not match:
        return 0, 0
    if match.group("hour24"):
        return int(match.group("hour24")), int(match.group("minute24"))
    hour = int(match.group("hour")) % 12
    if match.group("ampm").lower() == "p":
        hour += 12
    return hour, int(match.group("minute") or 0)


def _utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime | None:
    try:
        return datetime(year, month, day, hour, minute, tzinfo=UTC)
    except ValueError:  # "February 30", "25:00": not a date we can trust
        return None


def gmail_category(message: MailMessage) -> str | None:
    """ "Promotions", "Social", "Updates" or "Forums" from Gmail's CATEGORY_* labels."""
    # Looked up in a fixed order, never by iterating the labels: frozenset order varies
    # between processes (string hashing), and a message with two tabs must always give
    # the same answer.
    labels = {label.upper() for label in message.labels}
    for label, name in GMAIL_CATEGORIES:
        if label in labels:
            return name
    return None


def static_category(message: MailMessage) -> str | None:
    """ "Receipt", "Newsletter" or None; receipts first, since a kept receipt is harmless
    and an archived one is lost from view."""
    if is_receipt(message):
        return RECEIPT
    if is_newsletter(message):
        return NEWSLETTER
    return None
