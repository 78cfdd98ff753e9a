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
URL = env.WEBHOOK_URL + "/api/scheduled-actions/execute"
QSTASH_HEADER = {"alg": "HS256", "typ": "JWT"}
HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
# Text a UTF-8 body decodes to: any character but a lone surrogate.
TEXTS = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
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


def token(header: Any, claims: Any, key: str, alg: str = "HS256") -> str:
    """A token as QStash builds one: compact JSON, base64url without padding."""
    signing_input = ".".join(
        segment(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
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


def sdk_accepts(signature: str, text: str, url: str) -> bool:
    try:
        Receiver(*KEYS).verify(signature=signature, body=text, url=url)
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


BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
CHANGES = ["header", "claims", "key", "padding", "trailing bits", "junk", "text", "url", "several"]


@st.composite
def tokens(draw: st.DrawFn) -> tuple[str, str, str]:
    """(token, text, url): QStash's token changed in one way (or several at once)."""
    now = int(time.time())
    text, url = draw(TEXTS), URL
    kind = draw(st.sampled_from(CHANGES))
    several = kind == "several"
    header = draw(HEADERS) if kind == "header" or several else QSTASH_HEADER
    claims = minted_claims(text, now)
    if kind == "claims" or several:
        claims = draw(changed_claims(text, now, most=3 if several else 1))
    key = draw(st.sampled_from([*KEYS, OTHER_KEY] if kind == "key" or several else KEYS))
    alg = header.get("alg", "HS256") if isinstance(header, dict) else "HS256"
    parts = token(header, claims, key, alg).split(".")
    if kind == "padding" or (several and draw(st.booleans())):
        part = draw(st.integers(0, 2))
        parts[part] += "=" * (-len(parts[part]) % 4 or 1)
    if kind == "trailing bits" and alg == "HS256":
        # 32 bytes take 43 characters, whose last two bits are spare: the same bytes.
        last = BASE64URL.index(parts[2][-1])
        parts[2] = parts[2][:-1] + BASE64URL[last ^ draw(st.integers(1, 3))]
    if kind == "junk":  # a character outside base64url before or after a segment
        part, char = draw(st.integers(0, 2)), draw(st.sampled_from("! =.+/"))
        parts[part] = char + parts[part] if draw(st.booleans()) else parts[part] + char
    if kind == "text" or (several and draw(st.booleans())):
        text += draw(TEXTS.filter(bool))
    if kind == "url" or (several and draw(st.booleans())):
        url += draw(st.sampled_from(["/", "?a=1", "x"]))
    return ".".join(parts), text, url


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tokens())
def test_the_fast_path_accepts_only_tokens_the_sdk_accepts(case: tuple[str, str, str]) -> None:
    signature, text, url = case
    claims = minted_tokens.verified_claims(KEYS, signature, text, url)
    if claims is not None:
        assert sdk_accepts(signature, text, url)
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


def test_a_key_pyjwt_refuses_is_never_used() -> None:
    pem_like = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"
    signature = token(QSTASH_HEADER, minted_claims("{}", int(time.time())), pem_like)
    assert minted_tokens.verified_claims((pem_like,), signature, "{}", URL) is None


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


@pytest.mark.parametrize(
    "changes",
    [{"exp": int(time.time()) - 1}, {"sub": URL + "/other"}, {"body": body_hash("[]")}],
    ids=["expired", "another url", "another body"],
)
def test_a_minted_token_that_does_not_verify_is_refused(changes: dict[str, Any]) -> None:
    signature = token(QSTASH_HEADER, minted_claims("{}", int(time.time()), **changes), KEYS[0])
    with pytest.raises(InvalidSignature):
        verify_qstash(qstash_settings(), signature, b"{}", URL[len(env.WEBHOOK_URL) :])
