"""`jobbridge accounts check EMAIL` for an IMAP account: log in to both servers and say
which folders the jobs will use and what the server lacks, without changing anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.outcome import PermanentError
from tasks.mail.imap import ImapProvider
from tasks.mail.imap_folders import INBOX
from tasks.mail.smtp_submit import open_smtp


@dataclass(frozen=True)
class Finding:
    topic: str
    text: str
    problem: bool = False  # the account cannot work as it is


def check_imap(provider: ImapProvider) -> list[Finding]:
    """What a person needs to know before the jobs use this mailbox."""
    server = provider.imap
    where = f"{server.host}:{server.port} ({server.security})"
    try:
        client = provider.client
    except (PermanentError, ConnectionError) as error:
        # The SMTP server is checked all the same: both may need fixing.
        return [Finding("imap", str(error), problem=True), Finding("smtp", *_smtp(provider))]
    findings = [Finding("imap", f"{where}: logged in as {server.username}")]
    folders = provider.folders
    status = client.folder_status(INBOX, ["MESSAGES"])
    findings.append(Finding("inbox", f"{INBOX} ({status[b'MESSAGES']} messages)"))
    findings.append(
        Finding("archive", f"{folders.archive} (\\Archive)")
        if folders.archive
        else Finding("archive", "no \\Archive folder: one named Archive is made on first use")
    )
    findings.append(
        Finding("sent", f"{folders.sent} (\\Sent)")
        if folders.sent
        else Finding("sent", "no \\Sent folder: one named Sent is made on first send")
    )
    findings.append(
        Finding("labels", "IMAP keywords (the server takes custom keywords)")
        if provider.takes_keywords(INBOX)
        else Finding("labels", "no custom keywords here: each label is a folder holding copies")
    )
    findings.append(Finding("smtp", *_smtp(provider)))
    return findings


def _smtp(provider: ImapProvider) -> tuple[str, bool]:
    server = provider.smtp
    if server is None:
        return "not configured: digests, summaries and reply actions cannot be sent", True
    try:
        open_smtp(server, f"SMTP {server.host}:{server.port}").quit()
    except (PermanentError, ConnectionError) as error:
        return str(error), True
    return f"{server.host}:{server.port} ({server.security}): ready as {server.username}", False
