"""How an accounts file is read: the text editors write, and a refusal one can act on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.accounts_file import PATTERN_MAX, PROBLEMS_SHOWN, AccountsFileError
from tasks.accounts_file_syntax import load


def test_a_json_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    data = {"accounts": [{"email": "bom@example.test", "maildir": "m"}]}
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(data).encode())

    parsed = load(path)

    assert [entry.email for entry in parsed.accounts] == ["bom@example.test"]


def test_a_file_with_many_bad_entries_lists_the_first_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    path = tmp_path / "accounts.yaml"
    bad = PROBLEMS_SHOWN + 30
    path.write_text(
        "accounts:\n" + "".join(f"  - {{email: bad-{n}, maildir: m}}\n" for n in range(bad))
    )

    with pytest.raises(AccountsFileError) as refused:
        load(path)

    lines = str(refused.value).splitlines()
    assert len(lines) == 1 + PROBLEMS_SHOWN + 1
    assert lines[1].startswith("  accounts[0].email: ")
    assert lines[-1] == "  ... and 30 more"


def refusal(tmp_path: Path, text: str) -> str:
    path = tmp_path / "accounts.yaml"
    path.write_text(text)
    with pytest.raises(AccountsFileError) as refused:
        load(path)
    return str(refused.value)


def test_a_yes_or_no_where_a_number_of_days_belongs_is_refused(tmp_path: Path) -> None:
    text = "accounts:\n  - {email: a@example.test, maildir: m, digest: {every_days: true}}\n"

    assert "accounts[0].digest.every_days: " in refusal(tmp_path, text)


def test_a_condition_pattern_over_its_limit_is_refused_naming_it(tmp_path: Path) -> None:
    pattern = "x" * (PATTERN_MAX + 1)
    text = (
        "accounts:\n  - email: a@example.test\n    maildir: m\n    rules:\n"
        f"      - {{name: r, conditions: {{subject: {pattern}}}, actions: [{{type: ARCHIVE}}]}}\n"
    )

    assert "accounts[0].rules[0].conditions.subject: " in refusal(tmp_path, text)


def test_a_repeated_address_is_named_in_the_same_pass_as_an_entry_of_the_wrong_shape(
    tmp_path: Path,
) -> None:
    text = """
accounts:
  - {email: carl@example.test, maildir: a, senders: [{email: s@x.test}, {email: S@x.test}]}
  - {email: dee@example.test, maildir: b, summary: hourly}
  - {email: CARL@example.test, maildir: c}
"""
    lines = refusal(tmp_path, text).splitlines()

    assert lines[1:] == [
        "  accounts[0].senders[1].email: same address as accounts[0].senders[0]",
        lines[2],
        "  accounts[2].email: same address as accounts[0]",
    ]
    assert lines[2].startswith("  accounts[1].summary: ")


def one_rule(rule: str, senders: str = "[]") -> str:
    return (
        "accounts:\n  - email: a@example.test\n    maildir: m\n"
        f"    senders: {senders}\n    rules:\n      - {rule}\n"
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            one_rule(
                f"{{name: r, conditions: {{category: {'c' * 101}}}, actions: [{{type: ARCHIVE}}]}}"
            ),
            "accounts[0].rules[0].conditions.category: ",
        ),
        (
            one_rule(
                "{name: r, conditions: {subject: s}, "
                f"actions: [{{type: LABEL, label: {'l' * 256}}}]}}"
            ),
            "accounts[0].rules[0].actions[0].label: ",
        ),
        (
            "accounts:\n  - {email: " + "a" * 320 + "@example.test, maildir: m}\n",
            "accounts[0].email: ",
        ),
    ],
    ids=["category", "label", "account address"],
)
def test_a_value_longer_than_its_column_is_refused_naming_it(
    tmp_path: Path, text: str, where: str
) -> None:
    assert where in refusal(tmp_path, text)


def test_a_sender_that_is_no_address_is_refused_naming_it(tmp_path: Path) -> None:
    rule = "{name: r, conditions: {subject: s}, actions: [{type: ARCHIVE}]}"
    text = one_rule(rule, senders="[{email: not-an-address, status: IGNORED}]")

    assert "accounts[0].senders[0].email: must be an address" in refusal(tmp_path, text)


def test_repeated_rule_names_are_named(tmp_path: Path) -> None:
    rule = "{name: R1, conditions: {subject: s}, actions: [{type: ARCHIVE}]}"
    text = one_rule(rule) + f"      - {rule}\n"

    assert "'R1' repeated" in refusal(tmp_path, text)


def test_a_quoted_yes_is_no_switch(tmp_path: Path) -> None:
    rule = '{name: r, conditions: {subject: s, regex: "yes"}, actions: [{type: ARCHIVE}]}'

    assert "accounts[0].rules[0].conditions.regex: " in refusal(tmp_path, one_rule(rule))


def test_an_address_that_grows_past_its_column_in_lower_case_is_refused(tmp_path: Path) -> None:
    address = "\u0130" * 300 + "@example.test"  # İ lower-cases to two characters

    text = "accounts:\n  - {email: " + address + ", maildir: m}\n"

    assert "accounts[0].email: " in refusal(tmp_path, text)
