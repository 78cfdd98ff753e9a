"""The readable text of a parsed message's body: its text/plain part, or else its
text/html part rendered as plain text (one line per block, scripts and styles left out).
"""

from __future__ import annotations

from email.message import EmailMessage, Message
from html.parser import HTMLParser


def body_text(message: EmailMessage) -> str:
    """The body as text; empty when the message has neither a plain nor an HTML part."""
    plain = message.get_body(preferencelist=("plain",))
    if plain is not None:
        return _part_text(plain)
    html = message.get_body(preferencelist=("html",))
    if html is not None:
        return html_to_text(_part_text(html))
    return ""


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know: UTF-8 is the likeliest
        return payload.decode("utf-8", errors="replace")


class _HtmlText(HTMLParser):
    # Tags that start a new line in the rendered text.
    BLOCKS = frozenset(
        {
            "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
            "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
            "nav", "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul",
        }
    )  # fmt: skip
    # Tags whose content is never shown. Not <head>: often left unclosed, it would hide all.
    HIDDEN = frozenset({"script", "style", "template", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.pieces.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.pieces.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            # Source line breaks are spaces in HTML; only block tags break lines.
            self.pieces.append(data.replace("\r", " ").replace("\n", " "))


def html_to_text(html: str) -> str:
    """Readable text of an HTML body: one line per block, whitespace collapsed."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.pieces).split("\n"))
    return "\n".join(line for line in lines if line)
