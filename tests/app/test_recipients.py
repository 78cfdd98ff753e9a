"""What `--to` and an accounts file's `to`, `cc` and `bcc` take: addresses, with or
without a display name, one or several; nothing that names no one, or that would add a
header of its own."""

from __future__ import annotations

import pytest

from tasks.mail.composing import recipients_problem


@pytest.mark.parametrize(
    "field",
    [
        "a@b",
        "ana@example.com",
        '"Doe, Jane" <jane@example.com>',
        "ana@example.com, Bo <bo@example.com>",
        "kunde@bücher.de",
    ],
)
def test_addresses_with_or_without_a_display_name_are_taken(field: str) -> None:
    assert recipients_problem(field) is None


@pytest.mark.parametrize(
    "field", ["notanaddress", "", "Doe, Jane <jane@example.com>", "ana@example.com, nobody"]
)
def test_a_field_with_a_part_that_is_no_address_is_refused(field: str) -> None:
    assert "must be addresses like name@example.com" in str(recipients_problem(field))


def test_a_line_break_that_would_add_a_header_is_refused() -> None:
    assert "line breaks" in str(recipients_problem("a@b\nBcc: x@y"))
