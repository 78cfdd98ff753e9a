"""The contract tests' mailbox as a Gmail account and as a Microsoft 365 account, each on
its session's API double: the same three inbox messages the Maildir `Mailbox` has, and
the same view of their state (`keys`, `snapshot`), so the contract cases run unchanged.

The web server and the worker reach the doubles through the variables `mail_api_env`
gives them when they start; the account names its refresh token's variable
(`refresh_token_env`), which they inherit too, as in production.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from bridge.store.db import session_scope

SUBJECTS = ["Quarterly report", "Team lunch", "Your receipt"]
GMAIL_EMAIL, GRAPH_EMAIL = "gmail-user@example.test", "outlook-user@example.test"
GMAIL_TOKEN_ENV, GRAPH_TOKEN_ENV = "GMAIL_TEST_REFRESH_TOKEN", "GRAPH_TEST_REFRESH_TOKEN"
# Gmail's and Outlook's folders under the port's names.
_GRAPH_FOLDERS = {"inbox": "INBOX", "archive": "Archive", "sentitems": "Sent"}


def mail_api_env(gmail: Any, graph: Any) -> dict[str, str]:
    return {
        **gmail.env(),
        **graph.env(),
        GMAIL_TOKEN_ENV: gmail.refresh_token,
        GRAPH_TOKEN_ENV: graph.refresh_token,
    }


def _account(email: str, kind: str, token_env: str) -> str:
    from tasks.models import EmailAccount, MailProviderKind

    with session_scope() as session:
        account = EmailAccount(
            email=email,
            provider=MailProviderKind(kind),
            provider_settings={"refresh_token_env": token_env},
        )
        session.add(account)
    return account.id


class _ApiMailbox:
    double: Any

    def snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def provider(self) -> Any:
        """The account's adapter in the test's own process, on the same double."""
        raise NotImplementedError

    def folder_keys(self, folder: str) -> set[str]:
        return {entry[0] for entry in self.snapshot().get(folder, [])}


class GmailMailbox(_ApiMailbox):
    def __init__(self, gmail: Any) -> None:
        gmail.reset()
        self.double, self.email = gmail, GMAIL_EMAIL
        self.account_id = _account(GMAIL_EMAIL, "google", GMAIL_TOKEN_ENV)
        self.keys: list[str] = []
        for number, subject in enumerate(SUBJECTS):
            message = EmailMessage()
            message["From"] = f"sender{number}@example.test"
            message["To"] = GMAIL_EMAIL
            message["Subject"] = subject
            message["Message-ID"] = make_msgid("contract")
            message.set_content(f"Body of {subject}.")
            self.keys.append(gmail.deliver(message))

    def provider(self) -> Any:
        from tasks.mail.gmail import GmailProvider

        return GmailProvider(self.double.grant(), self.double.settings())

    def snapshot(self) -> dict[str, Any]:
        """Folder -> sorted (id, read, labels): Sent, INBOX, else Archive, as the
        adapter reads a message's folder from its labels. Mail sent to oneself is in
        Gmail's inbox too; it counts as Sent, as in the other mailboxes."""
        state: dict[str, list[Any]] = {}
        store = self.double.store
        for stored in list(store.messages.values()):
            ids = set(stored.label_ids)
            folder = "Sent" if "SENT" in ids else "INBOX" if "INBOX" in ids else "Archive"
            if folder == "Sent":
                state.setdefault(folder, []).append(("sent", stored.header("subject")))
                continue
            names = sorted(
                str(store.labels[i]["name"]) for i in ids if store.labels[i]["type"] == "user"
            )
            state.setdefault(folder, []).append((stored.id, "UNREAD" not in ids, names))
        return {folder: sorted(entries) for folder, entries in state.items()}


class GraphMailbox(_ApiMailbox):
    def __init__(self, graph: Any) -> None:
        graph.reset()
        self.double, self.email = graph, GRAPH_EMAIL
        self.account_id = _account(GRAPH_EMAIL, "microsoft", GRAPH_TOKEN_ENV)
        self.keys = [
            graph.deliver(subject, sender=f"sender{number}@example.test", to=GRAPH_EMAIL,
                          minutes_ago=10 - number)
            for number, subject in enumerate(SUBJECTS)
        ]  # fmt: skip

    def provider(self) -> Any:
        from tasks.mail.graph import GraphProvider

        return GraphProvider(self.double.grant(), self.double.settings())

    def snapshot(self) -> dict[str, Any]:
        state: dict[str, list[Any]] = {}
        with self.double.lock:
            stored = list(self.double.store.messages.values())
            messages = [self.double.store.snapshot(message) for message in stored]
        for message in messages:
            folder = _GRAPH_FOLDERS.get(str(message["folder"]), str(message["folder"]))
            if folder == "Sent":
                state.setdefault(folder, []).append(("sent", message["subject"]))
                continue
            entry = (message["id"], bool(message["isRead"]), sorted(message["categories"]))
            state.setdefault(folder, []).append(entry)
        return {folder: sorted(entries) for folder, entries in state.items()}
