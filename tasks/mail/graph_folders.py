"""Which Graph mail folder plays which part. The port names folders as the other adapters
do: INBOX (any case), Archive, Sent and Drafts are Graph's well-known folders `inbox`,
`archive`, `sentitems` and `drafts`; any other name is a top-level folder's displayName,
created (once) when a message is moved there.

Deleted Items and Junk Email are never part of a thread or a listing: a message the user
deleted or marked as spam no longer exists for the jobs, so acting on it cannot take it
back out (as for IMAP's Trash and Junk).

Folder ids never change (immutable ids only matter for items), so the provider keeps what
it learns for its lifetime.
"""

from __future__ import annotations

from bridge.outcome import PermanentError
from tasks.mail.graph_http import GraphApi, SubRequest, path_of, raise_for
from tasks.mail.port import MessageNotFound

INBOX, ARCHIVE, SENT, DRAFTS = "INBOX", "Archive", "Sent", "Drafts"
WELL_KNOWN = {INBOX: "inbox", ARCHIVE: "archive", SENT: "sentitems", DRAFTS: "drafts"}
HIDDEN = ("deleteditems", "junkemail")


def odata_text(value: str) -> str:
    """A string literal for $filter: quoted, with quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


class GraphFolders:
    def __init__(self, api: GraphApi) -> None:
        self._api = api
        self._names: dict[str, str] | None = None  # folder id -> port name
        self._hidden: set[str] = set()  # ids of Deleted Items and Junk Email
        self._by_name: dict[str, str] = {}  # display name -> folder id

    @staticmethod
    def well_known(port_name: str) -> str | None:
        """Graph's well-known name for a port folder name, if it is one."""
        if port_name.upper() == INBOX:
            return "inbox"
        return WELL_KNOWN.get(port_name)

    def _load(self) -> dict[str, str]:
        """The well-known folders' ids, read once (one JSON batch)."""
        if self._names is not None:
            return self._names
        names = [*WELL_KNOWN.values(), *HIDDEN]
        port = {graph: port for port, graph in WELL_KNOWN.items()}
        requests = [
            SubRequest("GET", path_of("me", "mailFolders", name), {"$select": "id,displayName"})
            for name in names
        ]
        found: dict[str, str] = {}
        for name, answer in zip(
            names, self._api.batch("read the well-known folders", requests), strict=True
        ):
            if answer.status == 404:
                continue  # a mailbox without this folder (an archive, on some accounts)
            raise_for(
                "read the well-known folders",
                answer.status,
                answer.headers,
                answer.body,
                self._api.who,
            )
            folder_id = str(answer.body.get("id", ""))
            if name in HIDDEN:
                self._hidden.add(folder_id)
            else:
                found[folder_id] = port[name]
        self._names = found
        return found

    def is_hidden(self, folder_id: str) -> bool:
        self._load()
        return folder_id in self._hidden

    def port_name(self, folder_id: str) -> str:
        """The port's name of the folder with this id."""
        names = self._load()
        if folder_id in names:
            return names[folder_id]
        try:
            answer = self._api.call(
                "read a mail folder",
                "GET",
                path_of("me", "mailFolders", folder_id),
                params={"$select": "id,displayName"},
            )
        except MessageNotFound:
            return folder_id  # deleted since: its id is all that is left to say
        name = str(answer.get("displayName") or folder_id)
        names[folder_id] = name
        self._by_name.setdefault(name, folder_id)
        return name

    def id_of(self, port_name: str) -> str | None:
        """The folder's id, or None when there is no such folder."""
        well_known = self.well_known(port_name)
        if well_known is not None:
            names = self._load()
            port = INBOX if well_known == "inbox" else port_name
            return next((fid for fid, name in names.items() if name == port), None)
        return self._user_folder(port_name)

    def segment(self, port_name: str) -> str | None:
        """What names the folder in a path: its well-known name, or its id; None when
        there is no such folder (never created here: listing it finds nothing)."""
        return self.well_known(port_name) or self._user_folder(port_name)

    def destination(self, port_name: str, folder_id: str | None) -> str:
        """What a move names the folder by: its well-known name, its id (`folder_id`, as
        `id_of` found it), or the id of the top-level folder created now."""
        well_known = self.well_known(port_name)
        if well_known is not None:
            return well_known
        if port_name.replace(" ", "").casefold() in HIDDEN or (
            folder_id is not None and self.is_hidden(folder_id)
        ):
            # A rule or an AI category named "Deleted Items" must not delete mail.
            raise PermanentError(f"{port_name!r} is not a folder a job may move mail into")
        if folder_id is not None:
            return folder_id
        try:
            created = self._api.call(
                f"create the mail folder {port_name!r}",
                "POST",
                "me/mailFolders",
                body={"displayName": port_name},
            )
        except PermanentError:  # 409 ErrorFolderExists: made by a concurrent job
            found = self._user_folder(port_name, fresh=True)
            if found is None:
                raise
            return found
        created_id = str(created.get("id", ""))
        self._by_name[port_name] = created_id
        if self._names is not None:
            self._names[created_id] = port_name
        return created_id

    def _user_folder(self, name: str, *, fresh: bool = False) -> str | None:
        if name in self._by_name and not fresh:
            return self._by_name[name]
        answer = self._api.call(
            f"find the mail folder {name!r}",
            "GET",
            "me/mailFolders",
            params={"$filter": f"displayName eq {odata_text(name)}", "$select": "id,displayName"},
        )
        for folder in answer.get("value", []):
            if isinstance(folder, dict) and folder.get("displayName") == name:
                folder_id = str(folder.get("id", ""))
                self._by_name[name] = folder_id
                if self._names is not None:
                    self._names.setdefault(folder_id, name)
                return folder_id
        return None
