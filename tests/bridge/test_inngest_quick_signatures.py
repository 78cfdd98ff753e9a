"""The quick signature check says yes or no only where the SDK's own check says the
same, whatever JSON a call carries and however it is written: a differential test
against the SDK (its canonical form, its signing and its check)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from inngest._internal import net, server_lib, transforms

from bridge.inngest.quick_signatures import canonical_form, quick_check

KEY = "signkey-prod-" + "ab" * 32
FALLBACK = "signkey-prod-" + "cd" * 32

characters = st.characters(exclude_categories=())  # surrogates too
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(characters, max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(characters, max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def written(draw: st.DrawFn) -> bytes:
    """A JSON value as some sender may write it: spacing, escapes, key order, encoding."""
    value = draw(json_values)
    text = json.dumps(
        value,
        ensure_ascii=draw(st.booleans()),
        sort_keys=draw(st.booleans()),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")])),
    )
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16"]))
    return text.encode(encoding, errors="surrogatepass")


def sdk_verifies(body: bytes, header: str) -> bool:
    verdict = net.validate_request_sig(
        body=body,
        headers={"x-inngest-signature": header},
        mode=server_lib.ServerKind.CLOUD,
        signing_key=KEY,
        signing_key_fallback=FALLBACK,
    )
    return isinstance(verdict, str)


@settings(max_examples=400, deadline=None)
@given(written())
def test_the_canonical_form_is_the_sdks_or_none(body: bytes) -> None:
    ours = canonical_form(body)

    if ours is not None:
        assert ours == transforms.canonicalize(body)


@settings(max_examples=400, deadline=None)
@given(written(), st.sampled_from([KEY, FALLBACK, "signkey-prod-" + "ef" * 32]))
def test_a_signed_body_is_never_refused_where_the_sdk_takes_it(body: bytes, key: str) -> None:
    if isinstance(transforms.canonicalize(body), Exception):
        return  # no signature of it could verify: the SDK refuses every one
    header = str(net.sign_request(body, key, round(time.time())))

    verdict = quick_check([KEY, FALLBACK])(body, header)

    assert verdict is None or verdict == sdk_verifies(body, header)


@settings(max_examples=200, deadline=None)
@given(written(), st.text("0123456789abcdef", min_size=64, max_size=64))
def test_a_made_up_signature_is_never_taken(body: bytes, digest: str) -> None:
    header = f"t={round(time.time())}&s={digest}"

    verdict = quick_check([KEY, FALLBACK])(body, header)

    assert verdict is None or verdict == sdk_verifies(body, header)


@pytest.mark.parametrize(
    "value",
    [
        [2**53 - 1, 2**53, 2**53 + 1, 2**55, 10**15, 10**16 - 1, -(10**17)],
        {"\U0001f600": 1, "\uff01": 2},  # UTF-16 order differs from code points here
        {"a": "\U0001f600", "b": "\ud800"},
    ],
    ids=["integers-around-2**53", "keys-beyond-the-bmp", "strings-beyond-the-bmp"],
)
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_where_ecmascript_and_python_differ_the_canonical_form_is_the_sdks_or_none(
    value: Any, ensure_ascii: bool
) -> None:
    body = json.dumps(value, ensure_ascii=ensure_ascii).encode(errors="surrogatepass")

    ours = canonical_form(body)

    assert ours is None or ours == transforms.canonicalize(body)


def call(**data: Any) -> bytes:
    return json.dumps({"event": {"name": "e", "data": data}, "steps": {}, "ctx": {}}).encode()


def test_a_call_without_floats_or_wide_characters_is_told_quickly() -> None:
    body = call(id="a1", ts=1_733_300_000_000, tags=["x", "é"], nested={"b": None, "a": True})
    header = str(net.sign_request(body, FALLBACK))

    assert quick_check([KEY, FALLBACK])(body, header) is True
    assert quick_check([KEY])(body, header) is False


def test_floats_long_numbers_and_wide_characters_are_left_to_the_sdk() -> None:
    for body in (call(weight=0.5), call(big=2**60), call(face="\U0001f600")):
        header = str(net.sign_request(body, KEY))
        assert quick_check([KEY])(body, header) is None
