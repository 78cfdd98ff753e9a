"""The account's Gmail labels, listed once per provider: ids for names and names for ids.

A label is named the way the user typed it, and found again whatever its case (Gmail
refuses a second label differing only in case). A label the jobs need is created once,
when no label has its name; one made meanwhile by another job (Gmail answers 409) is
looked up again instead. A label id (`Label_12`, `STARRED`) serves as well as a name:
the replaced app passed ids.
"""

from __future__ import annotations

from typing import Any

from bridge.outcome import PermanentError
from tasks.mail.gmail_calls import GmailCalls, LabelConflict
from tasks.mail.gmail_messages import SYSTEM_LABELS

USER = "me"
LABELS_A_JOB_MAY_SET = frozenset({"STARRED", "IMPORTANT"})


class GmailLabels:
    def __init__(self, calls: GmailCalls) -> None:
        self._calls = calls
        self._names: dict[str, str] | None = None  # id -> name, system labels included
        self._user: set[str] = set()  # the ids of user labels

    def _load(self) -> dict[str, str]:
        labels = self._calls.service.users().labels()
        answer = self._calls.run("users.labels.list", labels.list(userId=USER))
        names: dict[str, str] = {}
        self._user = set()
        for label in answer.get("labels") or ():
            names[str(label["id"])] = str(label.get("name") or label["id"])
            if label.get("type") == "user":
                self._user.add(str(label["id"]))
        self._names = names
        return names

    def _known(self) -> dict[str, str]:
        return self._names if self._names is not None else self._load()

    def user_names(self) -> list[str]:
        names = self._known()
        return sorted(names[label] for label in self._user)

    def user_label_names(self, label_ids: list[str]) -> dict[str, str]:
        """User label id -> name for the ids given; listed again once when one is new
        since the list was read (made by the user, or another job)."""
        wanted = [label for label in label_ids if label not in SYSTEM_LABELS]
        if not wanted:
            return {}
        names = self._known()
        if any(label not in names for label in wanted):
            names = self._load()
        return {label: names[label] for label in wanted if label in self._user}

    def find(self, label: str) -> str | None:
        """The id of the label with this id or name (any case); None if there is none,
        after looking at the list again."""
        found = _lookup(self._known(), label)
        if found is None:
            found = _lookup(self._load(), label)
        return found

    def name_of(self, label: str) -> str | None:
        found = self.find(label)
        return None if found is None else self._known().get(found)

    def ensure(self, label: str) -> str:
        """The id of the user label (or STARRED / IMPORTANT) with this id or name,
        created when there is none. The other system labels are refused: a rule or an AI
        category named "Trash" or "Inbox" must not delete mail or move it back."""
        if label.strip().upper() in SYSTEM_LABELS - LABELS_A_JOB_MAY_SET:
            raise PermanentError(
                f"{label!r} is one of Gmail's system labels, not a label a job may set"
            )
        found = _lookup(self._known(), label)
        if found is not None:
            return found
        body = {"name": label, "labelListVisibility": "labelShow", "messageListVisibility": "show"}
        labels = self._calls.service.users().labels()
        try:
            created: Any = self._calls.run(
                "users.labels.create", labels.create(userId=USER, body=body)
            )
        except LabelConflict:
            found = _lookup(self._load(), label)  # another job made it since the list
            if found is None:
                raise
            return found
        label_id = str(created["id"])
        self._known()[label_id] = str(created.get("name") or label)
        self._user.add(label_id)
        return label_id


def _lookup(names: dict[str, str], label: str) -> str | None:
    if label in names:
        return label
    wanted = label.casefold()
    for label_id, name in names.items():
        if name.casefold() == wanted:
            return label_id
    return None
