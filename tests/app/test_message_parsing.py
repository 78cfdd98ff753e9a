"""The adapters parse raw mail mostly under the compat32 policy (`tasks.mail.reading.parse`),
for speed: a message's body and attachments must read exactly as under the default
policy, malformed MIME headers included."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from tasks.mail.body_text import body_text
from tasks.mail.reading import parse

HEAD = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: s\r\nMIME-Version: 1.0\r\n"

SHAPES: dict[str, bytes] = {
    "plain, quoted-printable": HEAD
    + b'Content-Type: text/plain; charset="utf-8"\r\n'
    + b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 au lait=\r\n ok\r\n",
    "no content type at all": HEAD + b"\r\njust text\r\n",
    "alternative, html preferred last": HEAD
    + b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
    + b"--b\r\nContent-Type: text/plain\r\n\r\nplain words\r\n"
    + b"--b\r\nContent-Type: text/html\r\n\r\n<p>html words</p>\r\n--b--\r\n",
    "html only, base64": HEAD
    + b"Content-Type: text/html; charset=iso-8859-1\r\n"
    + b"Content-Transfer-Encoding: base64\r\n\r\nPHA+Y2Fm6TwvcD48cD5zZWNvbmQ8L3A+\r\n",
    "related with a start parameter": HEAD
    + b'Content-Type: multipart/related; boundary="r"; start="<two@x>"\r\n\r\n'
    + b"--r\r\nContent-Type: text/plain\r\nContent-ID: <one@x>\r\n\r\nnot the root\r\n"
    + b"--r\r\nContent-Type: text/html\r\nContent-ID: <two@x>\r\n\r\n<b>root</b>\r\n--r--\r\n",
    "mixed with a text attachment first": HEAD
    + b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
    + b'--m\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename="a.txt"'
    + b"\r\n\r\nattached text\r\n"
    + b"--m\r\nContent-Type: text/plain\r\n\r\nthe body\r\n--m--\r\n",
    "inline image beside the text": HEAD
    + b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
    + b"--m\r\nContent-Type: text/plain\r\n\r\nsee the picture\r\n"
    + b"--m\r\nContent-Type: image/png\r\nContent-Disposition: inline\r\n"
    + b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--m--\r\n",
    "charset in RFC 2231 form": HEAD
    + b"Content-Type: text/plain; charset*=utf-8''utf-8\r\n"
    + b"Content-Transfer-Encoding: 8bit\r\n\r\n\xc3\xa9t\xc3\xa9\r\n",
    "a charset Python does not know": HEAD
    + b"Content-Type: text/plain; charset=x-unknown-9\r\n\r\nstill readable\r\n",
    "upper-case types and a folded header": HEAD
    + b"Content-Type: MULTIPART/ALTERNATIVE;\r\n\tboundary=B\r\n\r\n"
    + b"--B\r\nContent-Type: TEXT/HTML\r\n\r\n<div>only html</div>\r\n--B--\r\n",
    "nested alternative inside mixed, with a PDF": HEAD
    + b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
    + b'--m\r\nContent-Type: multipart/alternative; boundary="a"\r\n\r\n'
    + b"--a\r\nContent-Type: text/plain\r\n\r\ninner plain\r\n"
    + b"--a\r\nContent-Type: text/html\r\n\r\n<i>inner html</i>\r\n--a--\r\n"
    + b'--m\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="f.pdf"'
    + b"\r\n\r\n%PDF\r\n--m--\r\n",
}


def _mixed(disposition: bytes) -> bytes:
    """A text attachment first, then the body: the disposition decides which is which."""
    return (
        HEAD
        + b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        + b"--m\r\nContent-Type: text/plain\r\nContent-Disposition: "
        + disposition
        + b"\r\n\r\nattached text\r\n--m\r\nContent-Type: text/plain\r\n\r\nthe body\r\n--m--\r\n"
    )


MALFORMED: dict[str, bytes] = {
    "disposition without a semicolon": _mixed(b"attachment filename=a.txt"),
    "disposition with a comment": _mixed(b"attachment (x); filename=a.txt"),
    "disposition with a stray comma": _mixed(b"attachment,"),
    "disposition with a stray colon": _mixed(b"attachment:"),
    "disposition folded before its parameter": _mixed(b"attachment\r\n\tfilename=a.txt"),
    "charset followed by a comment": HEAD
    + b"Content-Type: text/plain; charset=iso-8859-1 (latin)\r\n\r\ncaf\xe9\r\n",
    "charset in single quotes": HEAD
    + b"Content-Type: text/plain; charset='iso-8859-1'\r\n\r\ncaf\xe9\r\n",
    "boundary followed by a comment": HEAD
    + b"Content-Type: multipart/mixed; boundary=m (c)\r\n\r\n"
    + b"--m\r\nContent-Type: text/plain\r\n\r\ninside\r\n--m--\r\n",
    "transfer encoding with a comment": HEAD
    + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64 (b)\r\n\r\n"
    + b"aGVsbG8=\r\n",
}


def _default_policy(data: bytes) -> EmailMessage:
    parsed = BytesParser(EmailMessage, policy=policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _attachments(message: EmailMessage) -> list[str | None]:
    return [part.get_content_disposition() for part in message.walk()]


@pytest.mark.parametrize("shape", SHAPES)
def test_the_fast_parse_reads_the_same_body_as_the_default_policy(shape: str) -> None:
    data = SHAPES[shape]
    expected = body_text(_default_policy(data))
    assert expected  # every shape has a body to find
    assert body_text(parse(data)) == expected


@pytest.mark.parametrize("shape", SHAPES)
def test_the_fast_parse_sees_the_same_dispositions_as_the_default_policy(shape: str) -> None:
    data = SHAPES[shape]
    assert _attachments(parse(data)) == _attachments(_default_policy(data))


@pytest.mark.parametrize("shape", MALFORMED)
def test_malformed_mime_headers_read_as_under_the_default_policy(shape: str) -> None:
    data = MALFORMED[shape]
    expected = _default_policy(data)
    parsed = parse(data)
    assert body_text(parsed) == body_text(expected)
    assert _attachments(parsed) == _attachments(expected)


def test_an_attachment_without_a_semicolon_is_not_the_body() -> None:
    assert body_text(parse(MALFORMED["disposition without a semicolon"])) == "the body"
