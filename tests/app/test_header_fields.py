"""`header_fields` reads a header block as the email package's parser does."""

from __future__ import annotations

from email.parser import BytesHeaderParser

from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.mail.maildir_headers import header_fields, raw_headers


def parsed(block: bytes) -> dict[str, str]:
    return raw_headers(BytesHeaderParser().parsebytes(block).raw_items())


NAMES = st.sampled_from(["Subject", "Message-ID", "References", "X-Keywords", "date", "X"])
TEXT = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=12)
ENDINGS = st.sampled_from(["\r\n", "\n", "\r", ""])
LINES = st.one_of(
    st.builds(lambda n, sep, v: f"{n}{sep}{v}", NAMES, st.sampled_from([":", ": ", ":\t "]), TEXT),
    st.builds(lambda blank, v: blank + v, st.sampled_from([" ", "\t", "  "]), TEXT),  # folded
    st.builds(lambda v: "From " + v, TEXT),
    st.builds(lambda v: ":" + v, TEXT),  # no name
    TEXT,  # no field: the body, or the empty line before it
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(LINES, ENDINGS), max_size=10))
def test_a_header_block_reads_as_the_email_parser_reads_it(lines: list[tuple[str, str]]) -> None:
    block = "".join(line + ending for line, ending in lines).encode("latin-1")

    assert header_fields(block) == parsed(block)


def test_the_first_of_a_repeated_field_is_kept_with_its_folded_lines_joined() -> None:
    block = b"Received: a\r\n\tb\r\nreceived: c\r\nSubject:  hi\r\n\r\nbody\r\n"

    assert header_fields(block) == {"received": "a\r\n\tb", "subject": "hi"}


def test_bytes_that_are_not_ascii_are_kept_as_surrogates_as_the_parser_keeps_them() -> None:
    block = "Subject: Grüße\n".encode()

    assert header_fields(block) == {"subject": block[9:-1].decode("ascii", "surrogateescape")}


def test_a_block_longer_than_the_parsers_chunk_reads_as_the_parser_reads_it() -> None:
    # The parser reads 8192 characters at a time: a CRLF split between two reads.
    block = b"Subject: " + b"x" * (8192 - 10) + b"\r\nX-Keywords: a\r\n\tb\r\n"

    assert block[8191:8193] == b"\r\n"
    assert header_fields(block) == parsed(block)
