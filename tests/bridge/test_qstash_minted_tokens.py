"""QStash's own tokens are verified without PyJWT's general decoder
(bridge/qstash/minted_tokens.py), and that path never accepts what the SDK's
`Receiver.verify` refuses: checked here against the SDK itself, over tokens of every
shape hypothesis can build from QStash's and from changes to it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qstash import Receiver

from bridge.qstash import minted_tokens
from bridge.qstash.auth import InvalidSignature, verify_qstash
from config import Settings
from tests.support import env

KEYS = (env.QSTASH_CURRENT_KEY, env.QSTASH_NEXT_KEY)
OTHER_KEY = "sig_3Wq9LmZp8Rt2Xv6Bn4Kc7Hd1Fs5Gj0Ya"
PEM_LIKE_KEY = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"
# Keys PyJWT refuses (empty, PEM-like), warns about (short) or takes as any other.
ODD_KEYS = [
    "",
    "sig_short",
    PEM_LIKE_KEY,
    '{"kty":"oct","k":"c2lnX2tleQ"}',
    "sig_ключ_подписи_1234567890",
]
URL = env.WEBHOOK_URL + "/api/scheduled-actions/execute"
QSTASH_HEADER = {"alg": "HS256", "typ": "JWT"}
HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
# Text a UTF-8 body decodes to: any character but a lone surrogate.
TEXTS = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


def segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def body_hash(text: str) -> str:
    return segment(hashlib.sha256(text.encode()).digest())


def compact(part: Any) -> bytes:
    return json.dumps(part, separators=(",", ":")).encode()


def token(header: Any, claims: Any, key: str, alg: str = "HS256") -> str:
    """A token as QStash builds one (compact JSON, base64url without padding), or with
    its header or claims given as the bytes to encode."""
    signing_input = ".".join(
        segment(part if isinstance(part, bytes) else compact(part)) for part in (header, claims)
    )
    digest = hmac.new(key.encode(), signing_input.encode(), HASHES.get(alg, hashlib.sha256))
    return f"{signing_input}.{segment(digest.digest())}"


def minted_claims(text: str, now: int, **changes: Any) -> dict[str, Any]:
    claims = {
        "iss": "Upstash",
        "sub": URL,
        "body": body_hash(text),
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "jti": "jwt_2Ybx3Q9kLm",
    }
    claims.update(changes)
    return claims


def sdk_accepts(signature: str, text: str, url: str, keys: tuple[str, str] = KEYS) -> bool:
    """Whether the SDK accepts, with warnings as errors (a strict filter makes PyJWT's
    warning about a short key a refusal)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            Receiver(*keys).verify(signature=signature, body=text, url=url)
    except Exception:
        return False
    return True


@st.composite
def changed_claims(draw: st.DrawFn, text: str, now: int, most: int = 1) -> dict[str, Any]:
    """QStash's claims with up to `most` of them dropped, retyped, moved in time or
    changed, and maybe one added."""
    claims = minted_claims(text, now)
    names = st.lists(st.sampled_from(sorted(claims)), min_size=1, max_size=most, unique=True)
    for name in draw(names):
        change = draw(st.sampled_from(["drop", "retype", "time", "other"]))
        if change == "drop":
            del claims[name]
        elif change == "retype":
            claims[name] = draw(ODD_VALUES)
        elif change == "time":
            # exp one second ahead could pass the second between the two checks: never 1.
            offset = draw(st.integers(-600, 600).filter(lambda n: n != 1))
            claims[name] = now + offset
        else:
            claims[name] = draw(st.sampled_from(["Upstash ", "upstash", URL + "/", "", "x"]))
    if draw(st.integers(0, 3)) == 0:
        claims[draw(st.sampled_from(["aud", "foo", "nonce", "body_hash"]))] = draw(ODD_VALUES)
    return claims


HEADERS = st.sampled_from(
    [
        QSTASH_HEADER,
        {"alg": "HS256"},
        {"typ": "JWT", "alg": "HS256"},
        {"alg": "HS512", "typ": "JWT"},
        {"alg": "none", "typ": "JWT"},
        {"alg": "HS256", "typ": "JWT", "kid": 1},
        {"alg": "HS256", "typ": "JWT", "b64": False, "crit": ["b64"]},
        {"alg": "HS256", "typ": "jwt"},
        ["alg", "HS256"],
    ]
)


@st.composite
def written(draw: st.DrawFn, part: dict[str, Any]) -> bytes:
    """`part` as JSON written some other way than QStash's compact UTF-8: spaced,
    indented, escaped, with a key given twice (the last counts), or not in UTF-8."""
    text = json.dumps(
        part,
        indent=draw(st.sampled_from([None, 0, 2])),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")])),
        ensure_ascii=draw(st.booleans()),
    )
    if bool(part) and draw(st.booleans()):
        name = draw(st.sampled_from(sorted(part)))
        text = f"{{{json.dumps(name)}:{json.dumps(draw(ODD_VALUES))}," + text.lstrip()[1:]
    return text.encode(draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16"])))


BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
CHANGES = [
    "header",
    "claims",
    "json",
    "key",
    "keys",
    "padding",
    "trailing bits",
    "signature length",
    "junk",
    "text",
    "url",
    "several",
]


@st.composite
def tokens(draw: st.DrawFn) -> tuple[str, str, str, tuple[str, str]]:
    """(token, text, url, keys): QStash's token changed in one way (or several at once)."""
    now = int(time.time())
    text, url, keys = draw(TEXTS), URL, KEYS
    kind = draw(st.sampled_from(CHANGES))
    several = kind == "several"
    header: Any = draw(HEADERS) if kind == "header" or several else QSTASH_HEADER
    claims: Any = minted_claims(text, now)
    if kind == "claims" or several:
        claims = draw(changed_claims(text, now, most=3 if several else 1))
    if kind == "json" or (several and draw(st.booleans())):
        claims["jti"] = draw(TEXTS.filter(bool))
        header, claims = draw(written(header)), draw(written(claims))
    signers = [*KEYS]
    if kind in ("key", "several"):
        signers += [OTHER_KEY, *ODD_KEYS]
    if kind in ("keys", "several"):
        keys = draw(st.tuples(*[st.sampled_from([*KEYS, OTHER_KEY, *ODD_KEYS])] * 2))
        signers += keys
    key = draw(st.sampled_from(signers))
    alg = header.get("alg", "HS256") if isinstance(header, dict) else "HS256"
    parts = token(header, claims, key, alg).split(".")
    if kind == "padding" or (several and draw(st.booleans())):
        part = draw(st.integers(0, 2))
        parts[part] += "=" * (-len(parts[part]) % 4 or 1)
    if kind == "trailing bits" and alg == "HS256":
        # 32 bytes take 43 characters, whose last two bits are spare: the same bytes.
        last = BASE64URL.index(parts[2][-1])
        parts[2] = parts[2][:-1] + BASE64URL[last ^ draw(st.integers(1, 3))]
    if kind == "signature length":
        cut = draw(st.integers(1, 8))
        parts[2] = parts[2][:-cut] if draw(st.booleans()) else parts[2] + "A" * cut
    if kind == "junk":  # a character outside base64url before or after a segment
        part, char = draw(st.integers(0, 2)), draw(st.sampled_from("! =.+/"))
        parts[part] = char + parts[part] if draw(st.booleans()) else parts[part] + char
    if kind == "text" or (several and draw(st.booleans())):
        text += draw(TEXTS.filter(bool))
    if kind == "url" or (several and draw(st.booleans())):
        url += draw(st.sampled_from(["/", "?a=1", "x"]))
    return ".".join(parts), text, url, keys


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tokens())
def test_the_fast_path_accepts_only_tokens_the_sdk_accepts(
    case: tuple[str, str, str, tuple[str, str]],
) -> None:
    signature, text, url, keys = case
    claims = minted_tokens.verified_claims(keys, signature, text, url)
    if claims is not None:
        assert sdk_accepts(signature, text, url, keys)
        assert claims == json.loads(base64.urlsafe_b64decode(signature.split(".")[1] + "=="))


@settings(max_examples=200, deadline=None)
@given(
    text=TEXTS, key=st.sampled_from(KEYS), header=st.sampled_from([QSTASH_HEADER, {"alg": "HS256"}])
)
def test_every_token_qstash_mints_takes_the_fast_path(
    text: str, key: str, header: dict[str, str]
) -> None:
    signature = token(header, minted_claims(text, int(time.time())), key)
    assert sdk_accepts(signature, text, URL)
    assert minted_tokens.verified_claims(KEYS, signature, text, URL) is not None


def test_a_token_signed_with_another_key_is_not_accepted() -> None:
    signature = token(QSTASH_HEADER, minted_claims("{}", int(time.time())), OTHER_KEY)
    assert minted_tokens.verified_claims(KEYS, signature, "{}", URL) is None


@pytest.mark.parametrize("key", [PEM_LIKE_KEY, "", "sig_short"], ids=["PEM", "empty", "short"])
def test_a_key_pyjwt_refuses_or_warns_about_is_left_to_the_sdk(key: str) -> None:
    signature = token(QSTASH_HEADER, minted_claims("{}", int(time.time())), key)
    assert minted_tokens.verified_claims((key, KEYS[0]), signature, "{}", URL) is None


def test_a_usable_next_key_is_used_after_an_unusable_current_one() -> None:
    signature = token(QSTASH_HEADER, minted_claims("{}", int(time.time())), KEYS[1])
    assert minted_tokens.verified_claims((PEM_LIKE_KEY, KEYS[1]), signature, "{}", URL)


def test_a_key_that_is_not_unicode_text_is_left_to_the_sdk() -> None:
    signature = token(QSTASH_HEADER, minted_claims("{}", int(time.time())), KEYS[0])
    assert minted_tokens.verified_claims(("sig_\udcff" + "x" * 28,), signature, "{}", URL) is None


AT = 1_800_000_000


@pytest.mark.parametrize(
    ("claim", "now", "accepted"),
    [
        ("exp", AT, False),
        ("exp", AT - 0.5, True),
        ("nbf", AT - 0.5, False),
        ("nbf", AT, True),
        ("iat", AT - 0.5, False),
        ("iat", AT, True),
    ],
    ids=[
        "exp-at-now",
        "exp-after-now",
        "nbf-after-now",
        "nbf-at-now",
        "iat-after-now",
        "iat-at-now",
    ],
)
def test_times_are_checked_as_pyjwt_checks_them(claim: str, now: float, accepted: bool) -> None:
    """PyJWT refuses a token whose exp is now or past, whose nbf or iat is after now."""
    claims = minted_claims("{}", AT - 100, **{claim: AT})
    signature = token(QSTASH_HEADER, claims, KEYS[0])
    verified = minted_tokens.verified_claims(KEYS, signature, "{}", URL, now=now)
    assert (verified is not None) is accepted


def qstash_settings() -> Settings:
    return Settings(
        qstash_current_signing_key=env.QSTASH_CURRENT_KEY,
        qstash_next_signing_key=env.QSTASH_NEXT_KEY,
        webhook_url=env.WEBHOOK_URL,
    )


def test_a_token_of_another_shape_is_verified_by_the_sdk() -> None:
    now = int(time.time())
    text = '{"actionId": "a1"}'
    signature = token(QSTASH_HEADER, minted_claims(text, now, note="an extra claim"), KEYS[1])
    assert minted_tokens.verified_claims(KEYS, signature, text, URL) is None
    verified = verify_qstash(
        qstash_settings(), signature, text.encode(), URL[len(env.WEBHOOK_URL) :]
    )
    assert (verified.token_id, verified.expires_at.timestamp()) == ("jwt_2Ybx3Q9kLm", now + 300)


@pytest.mark.parametrize("where", ["header", "claims"])
def test_a_signed_token_nested_too_deeply_is_refused_not_crashed(where: str) -> None:
    deep = b"[" * 100_000
    header, claims = QSTASH_HEADER, minted_claims("{}", int(time.time()))
    signature = token(
        deep if where == "header" else header, deep if where == "claims" else claims, KEYS[0]
    )
    with pytest.raises(InvalidSignature):
        verify_qstash(qstash_settings(), signature, b"{}", URL[len(env.WEBHOOK_URL) :])


@pytest.mark.parametrize(
    "changes",
    [{"exp": int(time.time()) - 1}, {"sub": URL + "/other"}, {"body": body_hash("[]")}],
    ids=["expired", "another url", "another body"],
)
def test_a_minted_token_that_does_not_verify_is_refused(changes: dict[str, Any]) -> None:
    signature = token(QSTASH_HEADER, minted_claims("{}", int(time.time()), **changes), KEYS[0])
    with pytest.raises(InvalidSignature):
        verify_qstash(qstash_settings(), signature, b"{}", URL[len(env.WEBHOOK_URL) :])
