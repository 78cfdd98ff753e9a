"""The AI port answered by fixed rules: no network, no model, same input -> same output.

It is the default until a real model is wired in, and what tests and the demo run on.
Its answers are deliberately cautious: "cannot tell" (None) and "keep" are the
fallbacks, because a wrong category or a wrongly archived thread costs the user more
than one left alone.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from tasks.ai import static_rules as rules
from tasks.ai.port import CleanDecision
from tasks.mail.port import MailMessage

CATEGORIES = ("Newsletter", "Receipt", "Marketing", "Notification", "Personal", "Work")
_HUMAN_CATEGORIES = frozenset({"Personal", "Work"})

# Keyword evidence per category. A keyword counts once per message (twice in a subject,
# which states what the mail is about), so one long body cannot outvote the others.
_KEYWORDS: dict[str, re.Pattern[str]] = {
    "Newsletter": re.compile(
        r"\b(?:newsletter|this week in|weekly|digest|in this issue|issue #?\d+|edition)\b",
        re.IGNORECASE,
    ),
    "Receipt": re.compile(
        r"\b(?:receipt|invoice|order confirmation|your order|purchase|payment|paid)\b",
        re.IGNORECASE,
    ),
    "Marketing": rules.MARKETING_WORDS,
    "Notification": re.compile(
        r"\b(?:notification|alert|security|password|verify|verification|sign[- ]?in|"
        r"log[- ]?in|your account|reminder|has been (?:shipped|delivered|updated)|"
        r"shipped|delivered|code)\b",
        re.IGNORECASE,
    ),
    "Personal": re.compile(
        r"\b(?:family|dinner|lunch|weekend|birthday|party|vacation|holiday|kids|mom|dad|"
        r"love|miss you|catch up|coffee)\b",
        re.IGNORECASE,
    ),
    "Work": re.compile(
        r"\b(?:meeting|agenda|project|deadline|quarterly|report|client|proposal|contract|"
        r"standup|sprint|roadmap|review|presentation|budget|team)\b",
        re.IGNORECASE,
    ),
}
# Free mailbox providers: a person writing from one is more likely a friend than a job.
_FREEMAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "icloud.com",
        "me.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "aol.com",
    }
)
# Which Gmail tab is evidence for which of our categories (Forums says too little).
_GMAIL_TAB_CATEGORY = {
    "Promotions": "Marketing",
    "Social": "Notification",
    "Updates": "Notification",
}

# Instructions are read verb by verb: each verb starts a clause that runs to the next
# one ("archive newsletters, keep anything from Alice" is two clauses). Negated verbs
# come first in the alternation so "don't archive" is not read as "archive".
_KEEP_VERB = (
    r"(?:don'?t|do not|never)\s+(?:archive|clean|delete|remove|touch|mark)|keep|leave|preserve"
)
_DONE_VERB = r"archive|clean(?:\s+up)?|delete|remove|mark(?:\s+as)?\s+read|clear|get rid of|trash"
_VERB = re.compile(rf"\b(?:(?P<keep>{_KEEP_VERB})|(?P<done>{_DONE_VERB}))\b", re.IGNORECASE)
_FROM = re.compile(r"\bfrom\s+(?P<rest>.+)", re.IGNORECASE)
# "archive newsletters, but keep ..." -> the first clause is quoted as "archive newsletters".
_TRAILING_JOINER = re.compile(r"(?:[\s,;.]|\b(?:but|and|or|then)\b)*$", re.IGNORECASE)
_FILLER_WORDS = frozenset({"my", "the", "any", "all", "a", "an", "anyone", "anybody"})

_Predicate = Callable[[MailMessage], bool]
_TOPICS: tuple[tuple[re.Pattern[str], _Predicate], ...] = (
    (re.compile(r"\bnewsletters?\b", re.IGNORECASE), rules.is_newsletter),
    (re.compile(r"\b(?:receipts?|invoices?)\b", re.IGNORECASE), rules.is_receipt),
    (
        re.compile(r"\b(?:promotions?|promotional|marketing|ads|advertising)\b", re.IGNORECASE),
        lambda message: (
            rules.gmail_category(message) == "Promotions"
            or rules.has_marketing_words(message.subject)
        ),
    ),
    (re.compile(r"\b(?:notifications?|alerts?)\b", re.IGNORECASE), rules.is_automated),
    (
        re.compile(r"\b(?:calendar|invites?|invitations?)\b", re.IGNORECASE),
        rules.is_calendar_invite,
    ),
)

SUMMARY_LIMIT = 280
_HTML_TAG = re.compile(r"<(?:html|body|div|p|br|table|span|a)\b", re.IGNORECASE)
_INLINE_URL = re.compile(r"<?(?:https?://|mailto:|www\.)[^\s>]+>?", re.IGNORECASE)
# Where the message proper ends: signature, reply/forward headers, phone footers.
_CUT = re.compile(
    r"^(?:--\s*|_{3,}|-{2,}\s*(?:original|forwarded) message.*|on .+ wrote:|"
    r"from:\s.+|sent from my .+|get outlook for .+|"
    r"(?:best|thanks|thank you|many thanks|cheers|regards|kind regards|best regards|"
    r"warm regards|sincerely|all the best|talk soon|thx)[,.!]?)\s*$",
    re.IGNORECASE,
)
_GREETING_LINE = re.compile(
    r"^(?:hi|hello|hey|dear|hiya|greetings|good (?:morning|afternoon|evening))\b"
    r"(?:\s+[\w.'-]+){0,3}\s*[,!:.]?$",
    re.IGNORECASE,
)
_GREETING_PREFIX = re.compile(
    r"^(?:hi|hello|hey|dear|hiya|greetings|good (?:morning|afternoon|evening))\b"
    r"[^,!\n]{0,40}[,!]\s*",
    re.IGNORECASE,
)
_BOILERPLATE = re.compile(
    r"unsubscribe|view (?:this email|it|this message)? ?in (?:your|a) browser|"
    r"you(?:'re| are) receiving|you received this|this (?:email|message) was sent|"
    r"all rights reserved|copyright|©|privacy policy|terms of service|"
    r"(?:manage|update) (?:your )?(?:email )?preferences|no longer wish|"
    r"trouble viewing|do not reply to this",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_MIN_SENTENCE_WORDS = 3


def _now() -> datetime:
    return datetime.now(UTC)


class OfflineAI:
    """Deterministic rules behind the AI port.

    `now` and `min_age` only matter to decide_clean ("old" automated mail): pass a fixed
    clock for reproducible answers. The clean producer already selects threads older than
    the user's `daysOld`; `min_age` is a floor for any other caller, so notifications of
    the last day (codes, alerts) are not archived under the user's eyes.
    """

    def __init__(
        self, *, now: Callable[[], datetime] = _now, min_age: timedelta = timedelta(days=1)
    ) -> None:
        self._now = now
        self._min_age = min_age

    # categorize ---------------------------------------------------------------
    def categorize_sender(self, sender: str, messages: Sequence[MailMessage]) -> str | None:
        if not messages:
            return None
        static = [category for m in messages if (category := rules.static_category(m))]
        if static:
            # Majority of the static verdicts; a tie goes to the order static_category
            # uses (Receipt first), for the same reason it does.
            return max(
                (rules.RECEIPT, rules.NEWSLETTER),
                key=lambda name: (static.count(name), name == rules.RECEIPT),
            )
        return _best_scored(_scores(messages))

    # clean --------------------------------------------------------------------
    def decide_clean(
        self, thread: Sequence[MailMessage], instructions: str | None
    ) -> CleanDecision:
        if not thread:
            return CleanDecision(False, "Empty thread: nothing to decide on")
        # The user's own words come before any default of ours.
        instructed = _follow_instructions(thread, instructions or "")
        if instructed is not None:
            return instructed
        if any(message.sent_by_me for message in thread):
            return CleanDecision(False, "You took part in this conversation")
        human = next((m for m in thread if not rules.is_automated(m)), None)
        if human is not None:
            return CleanDecision(False, f"Written by a person ({human.sender or 'unknown'})")
        newest = _newest_date(thread)
        # No date at all: the producer only enqueues threads already past `daysOld`.
        if newest is not None and self._now() - newest < self._min_age:
            return CleanDecision(False, "Recent automated mail: left for you to see")
        return CleanDecision(
            True, f"Old automated mail from {thread[-1].sender or 'unknown'}, never answered"
        )

    # digest -------------------------------------------------------------------
    def summarize(self, message: MailMessage) -> str:
        sentences = _meaningful_sentences(message.body)
        if not sentences:
            return ""
        summary = sentences[0]
        if len(sentences) > 1 and len(summary) + 1 + len(sentences[1]) <= SUMMARY_LIMIT:
            summary = f"{summary} {sentences[1]}"
        return _truncate(summary, SUMMARY_LIMIT)


# categorize helpers -------------------------------------------------------------
def _scores(messages: Sequence[MailMessage]) -> dict[str, int]:
    scores = dict.fromkeys(CATEGORIES, 0)
    for message in messages:
        automated = rules.is_automated(message)
        for category, pattern in _KEYWORDS.items():
            if automated and category in _HUMAN_CATEGORIES:
                # A machine wrote it: "team" or "dinner" in it says nothing about a
                # colleague or a friend (a restaurant's offer mentions dinner too).
                continue
            if pattern.search(message.subject):
                scores[category] += 2
            if pattern.search(message.body):
                scores[category] += 1
        tab = rules.gmail_category(message)
        if tab in _GMAIL_TAB_CATEGORY:
            scores[_GMAIL_TAB_CATEGORY[tab]] += 2
        if automated:
            scores["Notification"] += 1
        elif rules.sender_address(message).partition("@")[2] in _FREEMAIL_DOMAINS:
            scores["Personal"] += 2
    return scores


def _best_scored(scores: dict[str, int]) -> str | None:
    best = max(scores.values())
    leaders = [category for category in CATEGORIES if scores[category] == best]
    # No evidence, or evidence split evenly: guessing would be a coin toss.
    if best <= 0 or len(leaders) > 1:
        return None
    return leaders[0]


# clean helpers ------------------------------------------------------------------
def _follow_instructions(thread: Sequence[MailMessage], instructions: str) -> CleanDecision | None:
    """Keep/done from the first-matching clauses of simple instructions; keep wins a tie.

    A clause applies when every condition it names holds (a "from X" sender and/or a
    topic such as newsletters); a clause naming none is ignored rather than read as
    "everything", since misreading it would archive the whole inbox.
    """
    others = [message for message in thread if not message.sent_by_me] or list(thread)
    verbs = list(_VERB.finditer(instructions))
    keep: str | None = None
    done: str | None = None
    for index, verb in enumerate(verbs):
        end = verbs[index + 1].start() if index + 1 < len(verbs) else len(instructions)
        clause = _TRAILING_JOINER.sub("", instructions[verb.start() : end])
        if not _clause_matches(instructions[verb.end() : end], others):
            continue
        if verb.group("keep") and keep is None:
            keep = clause
        elif verb.group("done") and done is None:
            done = clause
    if keep is not None:
        return CleanDecision(False, f'Your instructions say: "{keep}"')
    if done is not None:
        return CleanDecision(True, f'Your instructions say: "{done}"')
    return None


def _clause_matches(clause: str, messages: Sequence[MailMessage]) -> bool:
    conditions: list[_Predicate] = []
    who = _sender_fragment(clause)
    if who:
        conditions.append(lambda message: who in message.sender.lower())
    for pattern, predicate in _TOPICS:
        if pattern.search(clause):
            conditions.append(predicate)
    if not conditions:
        return False
    return all(any(condition(message) for message in messages) for condition in conditions)


def _sender_fragment(clause: str) -> str | None:
    """The word after "from" ("keep mail from Alice" -> "alice"), skipping "my", "the"."""
    match = _FROM.search(clause)
    if not match:
        return None
    for word in match.group("rest").split():
        token = word.strip("\"'.,;:!?()<>").lower()
        if token and token not in _FILLER_WORDS:
            return token if len(token) >= 2 else None
    return None


def _newest_date(thread: Sequence[MailMessage]) -> datetime | None:
    dates = [
        m.date if m.date.tzinfo else m.date.replace(tzinfo=UTC)  # naive: read as UTC
        for m in thread
        if m.date is not None
    ]
    return max(dates, default=None)


# summary helpers ----------------------------------------------------------------
def _meaningful_sentences(body: str) -> list[str]:
    if _HTML_TAG.search(body):
        # The port promises plain text; a payload's `content` may still be HTML.
        body = html.unescape(re.sub(r"<[^>]+>", " ", body))
    paragraphs: list[list[str]] = [[]]
    for raw in body.splitlines():
        line = raw.strip()
        if _CUT.match(line):
            break
        if not line:
            paragraphs.append([])
            continue
        if line.startswith(">") or _BOILERPLATE.search(line) or _GREETING_LINE.match(line):
            continue
        without_greeting = _GREETING_PREFIX.sub("", line)
        if without_greeting != line:
            # "Good morning all, the build is green." -> "The build is green."
            without_greeting = without_greeting[:1].upper() + without_greeting[1:]
        line = _INLINE_URL.sub("", without_greeting).strip()
        if line:
            paragraphs[-1].append(line)
    sentences: list[str] = []
    for paragraph in paragraphs:
        text = re.sub(r"\s+", " ", " ".join(paragraph)).strip()
        for sentence in _SENTENCE_END.split(text):
            words = re.findall(r"[^\W\d_]+", sentence)
            # Headings, "Thanks!", bare dates: too short to tell the reader anything.
            if len(words) >= _MIN_SENTENCE_WORDS:
                sentences.append(sentence.strip())
    return sentences


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    cut = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return cut.rstrip(" ,;:-") + "…"
