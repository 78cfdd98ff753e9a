"""Listing benchmark: list_threads pages on the IMAP adapter (a private Dovecot) and the
Maildir adapter, in mailboxes of 1,000, 10,000 and 50,000 messages.

    .venv/bin/python bench/listing.py [--sizes 1000,10000,50000] [--repeats 5] [--strict]

Rows (against the smallest mailbox, measured in this same run), for each adapter:

  first page / deep page / window page: the time of one list_threads page (page_size 25)
  and the peak of the Python memory it allocates (tracemalloc), at the largest mailbox
  against the smallest. The first page is the newest 25 threads; a deep page starts at a
  cursor 50-90% of the way down the mailbox; a window page is the first unread_only page
  of [after, before) around the middle of the mailbox (a tenth of it wide). Each is the
  median of --repeats pages; deep and window pages start at a new place each time, and
  the IMAP adapter's fetched header fields are forgotten before each page (the folder's
  order and threads are kept), so each page reads its messages as a first visit does.
  Goal: <= 3x the smallest mailbox's.
  Why 3x: a page reads about as many messages as it shows, but what finds its start
  (bisection over the folder's order, a probe batch per 32-fold of the folder) and the
  server's own work per command grow a little with the folder; 3x leaves that room and
  the noise of a few milliseconds, and fails anything that reads the folder per page
  (that is 50x at 50 times the mail).
  cold first page: the first page in a fresh process (nothing kept yet: the adapter reads
  the folder's order and threads once, then keeps them), against the smallest mailbox.
  Goal: at most linear: <= 1.5 x the ratio of the mailbox sizes (room for noise).

The mail: one message a minute going back from now, in blocks of five: a thread of three
(a root and two replies, with References and In-Reply-To) and two single messages; every
third message read. The IMAP mailbox is written straight into the Dovecot user's Maildir
before the first login (`tests/support/dovecot.py`, `Dovecot.seed`), then Dovecot indexes
it once (SELECT, SORT, THREAD), as for a mailbox in use; the Maildir adapter's mailbox is
the same messages as files. Both adapters must list the same threads on every page.

Everything it uses is its own and removed at the end, on failure too: a temporary
directory (the Maildirs, Dovecot's configuration, state and logs) and the Dovecot it
starts, on 127.0.0.1. Progress goes to stderr; the one table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from enqueue import Row, print_table, run_cleanup, say

if TYPE_CHECKING:
    from tasks.mail.port import MailProvider, ThreadPage

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (1_000, 10_000, 50_000)
MAX_SIZE = 200_000
PAGE_SIZE = 25
GOAL_RATIO = 3.0
PASSWORD_ENV = "BENCH_IMAP_PASSWORD"  # for the cold child process: never in its argv
KINDS = ("first page", "deep page", "window page")
ADAPTERS = ("IMAP", "Maildir")
FILLER = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod. " * 4


def raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """A terminated bench still cleans up: SIGTERM unwinds like Ctrl-C."""
    raise SystemExit(f"terminated by signal {signum}")


# --- The mail ---------------------------------------------------------------------------


def message_id(number: int, size: int) -> str:
    return f"<m{number}.{size}@bench.example.test>"


def date_of(number: int, now: datetime) -> datetime:
    """Message `number` (0 is the newest) is `number` minutes old."""
    return now - timedelta(minutes=number)


def make_message(number: int, size: int, now: datetime) -> bytes:
    """Blocks of five, oldest last: a root (4), its reply (3), a reply to that (2), and two
    messages of their own (1, 0)."""
    place = number % 5
    headers = [
        f"From: sender{number % 97}@example.test",
        "To: me@bench.example.test",
        f"Subject: {'Re: ' if place in (2, 3) else ''}Topic {number - place + 4}",
        f"Date: {format_datetime(date_of(number, now))}",
        f"Message-ID: {message_id(number, size)}",
    ]
    if place in (2, 3):
        root, parent = message_id(number - place + 4, size), message_id(number + 1, size)
        chain = root if place == 3 else f"{root} {parent}"
        headers += [f"References: {chain}", f"In-Reply-To: {parent}"]
    body = f"Message {number}.\r\n{FILLER}\r\n"
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode()


def mailbox(size: int, now: datetime) -> Iterator[tuple[bytes, float, bool]]:
    for number in range(size):
        yield make_message(number, size, now), date_of(number, now).timestamp(), number % 3 == 0


def write_maildir(root: Path, size: int, now: datetime) -> None:
    """The same messages as a Maildir (the Maildir adapter's INBOX is its root)."""
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for number, (data, arrived, read) in enumerate(mailbox(size, now)):
        name = f"{int(arrived)}.M{number}P{os.getpid()}.bench:2,{'S' if read else ''}"
        path = root / "cur" / name
        path.write_bytes(data)
        os.utime(path, (arrived, arrived))


# --- Pages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """What to ask list_threads for."""

    kind: str
    options: dict[str, Any]


def pages(kind: str, size: int, now: datetime, repeats: int, offset: float) -> list[Page]:
    """`repeats` pages of one kind, each at a place of its own (offset: another set)."""
    from tasks.mail.maildir_cursor import encode_cursor, micros

    made = []
    for number in range(repeats):
        share = offset + 0.4 * number / max(1, repeats - 1)  # 0.5 .. 0.9 of the mailbox
        if kind == "first page":
            made.append(Page(kind, {}))
        elif kind == "deep page":
            deep = date_of(int(size * share), now)
            made.append(Page(kind, {"page_token": encode_cursor((-micros(deep), ""))}))
        else:
            newest = int(size * (share - 0.2))
            after, before = date_of(newest + size // 10, now), date_of(newest, now)
            made.append(Page(kind, {"after": after, "before": before, "unread_only": True}))
    return made


@dataclass
class Measured:
    seconds: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)  # bytes

    @property
    def time(self) -> float:
        return statistics.median(self.seconds)

    @property
    def memory(self) -> float:
        return statistics.median(self.peaks)


def list_page(mail: MailProvider, page: Page) -> ThreadPage:
    return mail.list_threads(page_size=PAGE_SIZE, **page.options)


def timed(mail: MailProvider, page: Page) -> tuple[float, ThreadPage]:
    started = time.perf_counter()
    listed = list_page(mail, page)
    return time.perf_counter() - started, listed


def traced(mail: MailProvider, page: Page) -> int:
    """The peak of the Python memory the page allocates, in bytes."""
    tracemalloc.start()
    try:
        list_page(mail, page)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(
    mails: dict[str, MailProvider], size: int, now: datetime, repeats: int
) -> tuple[dict[tuple[str, str], Measured], list[str]]:
    """Warm pages on each adapter; the threads each page lists must agree. The IMAP
    adapter keeps the header fields it fetched: forgotten before each page, so each one
    fetches its messages as a first visit does (in a small mailbox pages would overlap)."""
    from tasks.mail.imap_index import forget_headers

    results: dict[tuple[str, str], Measured] = {}
    disagreements: list[str] = []
    for kind in KINDS:
        for page in pages(kind, size, now, repeats, 0.5):
            listed = {}
            for name, mail in mails.items():
                forget_headers()
                seconds, listed[name] = timed(mail, page)
                results.setdefault((name, kind), Measured()).seconds.append(seconds)
            first, *others = listed.values()
            if len(first.thread_ids) != PAGE_SIZE or first.next_page_token is None:
                disagreements.append(f"{size:,} {kind}: {len(first.thread_ids)} threads")
            if any(other.thread_ids != first.thread_ids for other in others):
                disagreements.append(f"{size:,} {kind}: the adapters list other threads")
        for page in pages(kind, size, now, repeats, 0.55):  # other places, memory traced
            for name, mail in mails.items():
                forget_headers()
                results[(name, kind)].peaks.append(traced(mail, page))
    return results, disagreements


# --- A fresh process: the cold first page -----------------------------------------------


def cold_child(adapter: str, where: str) -> None:
    """One first page in this fresh process; prints {"seconds", "peak"}."""
    mail: MailProvider
    if adapter == "IMAP":
        from tasks.mail.imap import ImapProvider
        from tasks.mail.imap_session import ServerSettings

        host, port, user = where.split(":", 2)
        settings = ServerSettings(host, int(port), "none", user, os.environ[PASSWORD_ENV])
        imap = ImapProvider(settings, None, f"{user}@bench.example.test")
        imap.client  # noqa: B018 - connected and logged in before the clock starts
        mail = imap
    else:
        from tasks.mail.maildir import MaildirProvider

        mail = MaildirProvider(where, "me@bench.example.test")
    tracemalloc.start()
    seconds, _ = timed(mail, Page("first page", {}))
    print(json.dumps({"seconds": seconds, "peak": tracemalloc.get_traced_memory()[1]}))


def cold(adapter: str, where: str, password: str, repeats: int) -> Measured:
    found = Measured()
    for _ in range(repeats):
        result = subprocess.run(
            [sys.executable, __file__, "--cold-child", adapter, where],
            env={**os.environ, PASSWORD_ENV: password},
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        found.seconds.append(answer["seconds"])
        found.peaks.append(answer["peak"])
    return found


# --- Set-up -----------------------------------------------------------------------------


def start_dovecot(base: Path) -> Any:
    sys.path.insert(0, str(ROOT))  # tests.support: the suite's own Dovecot set-up
    from tests.support.dovecot import start_dovecot as start

    return start(base)


def prepare_imap(dovecot: Any, size: int, now: datetime, password: str) -> str:
    """A user whose INBOX holds the mailbox, indexed by Dovecot; its login name."""
    from imapclient import IMAPClient

    user = f"bench-{size}"
    dovecot.add_user(user, password)
    started = time.perf_counter()
    dovecot.seed(user, mailbox(size, now))
    written = time.perf_counter() - started
    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=600) as client:
        client.login(user, password)
        client.select_folder("INBOX", readonly=True)
        client.sort(["REVERSE DATE"])
        client.thread("REFS")
    say(
        f"IMAP {size:,}: written in {written:.1f}s, indexed by Dovecot in "
        f"{time.perf_counter() - started - written:.1f}s (set-up)"
    )
    return user


def prepare_maildir(root: Path, size: int, now: datetime) -> None:
    started = time.perf_counter()
    write_maildir(root, size, now)
    say(f"Maildir {size:,}: written in {time.perf_counter() - started:.1f}s (set-up)")


# --- Report -----------------------------------------------------------------------------


def shown(kind: str, value: float) -> str:
    return f"{value * 1000:,.1f} ms" if kind == "time" else f"{value / 1024:,.0f} KiB"


def rows(
    sizes: list[int],
    warm: dict[int, dict[tuple[str, str], Measured]],
    colds: dict[int, dict[str, Measured]],
) -> list[Row]:
    small, large = sizes[0], sizes[-1]
    made: list[Row] = []
    for adapter in ADAPTERS:
        for kind in KINDS:
            for metric in ("time", "memory"):
                values = {size: getattr(warm[size][(adapter, kind)], metric) for size in sizes}
                ratio = values[large] / values[small]
                middle = ", ".join(
                    f"{size:,}: {shown(metric, values[size])}" for size in sizes[1:-1]
                )
                made.append(
                    Row(
                        f"{adapter} {kind}, {metric} per page",
                        f"{large:,}: {shown(metric, values[large])}"
                        + (f" ({middle})" if middle else ""),
                        f"{small:,}: {shown(metric, values[small])}",
                        ratio,
                        f"<= {GOAL_RATIO:.0f}x",
                        ratio <= GOAL_RATIO,
                    )
                )
        limit = 1.5 * large / small
        ratio = colds[large][adapter].time / colds[small][adapter].time
        middle = ", ".join(
            f"{size:,}: {shown('time', colds[size][adapter].time)}" for size in sizes[1:-1]
        )
        made.append(
            Row(
                f"{adapter} cold first page (fresh process), time",
                f"{large:,}: {shown('time', colds[large][adapter].time)}"
                + (f" ({middle})" if middle else ""),
                f"{small:,}: {shown('time', colds[small][adapter].time)}",
                ratio,
                f"<= {limit:.0f}x (1.5 x linear)",
                ratio <= limit,
            )
        )
    return made


# --- Main -------------------------------------------------------------------------------


def run(sizes: list[int], repeats: int, data_dir: Path) -> tuple[list[Row], list[str]]:
    from tasks.mail.imap import ImapProvider
    from tasks.mail.imap_session import ServerSettings
    from tasks.mail.maildir import MaildirProvider

    password = secrets.token_urlsafe(12)
    now = datetime.now(UTC).replace(microsecond=0)
    dovecot = start_dovecot(data_dir / "dovecot")
    cleanups: list[tuple[str, Callable[[], object]]] = [("Dovecot", dovecot.stop)]
    try:
        warm: dict[int, dict[tuple[str, str], Measured]] = {}
        colds: dict[int, dict[str, Measured]] = {}
        problems: list[str] = []
        for size in sizes:
            user = prepare_imap(dovecot, size, now, password)
            root = data_dir / f"maildir-{size}"
            prepare_maildir(root, size, now)
            time.sleep(2.1)  # a Maildir directory changed in the last 2 s is scanned again
            where = {"IMAP": f"{dovecot.host}:{dovecot.port}:{user}", "Maildir": str(root)}
            colds[size] = {name: cold(name, where[name], password, 3) for name in ADAPTERS}
            settings = ServerSettings(dovecot.host, dovecot.port, "none", user, password)
            imap = ImapProvider(settings, None, f"{user}@bench.example.test")
            mails: dict[str, MailProvider] = {
                "IMAP": imap,
                "Maildir": MaildirProvider(root, "me@bench.example.test"),
            }
            try:
                for mail in mails.values():
                    list_page(mail, Page("first page", {}))  # the folder kept from here on
                warm[size], disagreements = measure(mails, size, now, repeats)
            finally:
                imap.close()
            problems += disagreements
            say(
                f"{size:,}: "
                + "; ".join(
                    f"{name} {kind} {warm[size][(name, kind)].time * 1000:.1f} ms"
                    for name in ADAPTERS
                    for kind in KINDS
                )
            )
    finally:
        run_cleanup(cleanups)
    notes = [
        f"Pages of {PAGE_SIZE} threads; median of {repeats} pages each (cold: of 3 fresh "
        f"processes); memory: tracemalloc's peak during one list_threads call.",
        "IMAP: Dovecot "
        + dovecot_version()
        + " on 127.0.0.1 (SORT, THREAD=REFS); Maildir: files on "
        + str(data_dir)
        + f"; {os.cpu_count()} CPUs.",
        "Mail: one message a minute, blocks of 5 (a thread of 3 and 2 single messages), "
        "every third read; both adapters listed the same threads on every page"
        + (": NO, " + "; ".join(problems) if problems else "."),
    ]
    return rows(sizes, warm, colds), notes


def dovecot_version() -> str:
    from tests.support.dovecot import installed_version

    return installed_version()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes",
        default=",".join(str(size) for size in DEFAULT_SIZES),
        help="mailbox sizes, smallest first",
    )
    parser.add_argument("--repeats", type=int, default=5, help="pages of each kind")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a row misses")
    parser.add_argument("--cold-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_child:
        cold_child(*args.cold_child)
        return 0
    sizes = sorted({max(100, min(int(size), MAX_SIZE)) for size in args.sizes.split(",")})
    if len(sizes) < 2:
        parser.error("--sizes needs two sizes or more")
    repeats = max(1, min(args.repeats, 50))

    signal.signal(signal.SIGTERM, raise_on_sigterm)
    data_dir = Path(tempfile.mkdtemp(prefix="jobbridge-bench-listing-"))
    try:
        table, notes = run(sizes, repeats, data_dir)
    finally:
        run_cleanup([(str(data_dir), lambda: shutil.rmtree(data_dir, ignore_errors=True))])
    print_table(table, notes, title="jobbridge listing benchmark", caption_justify="left")
    return 1 if args.strict and not all(row.passed for row in table) else 0


if __name__ == "__main__":
    sys.exit(main())
