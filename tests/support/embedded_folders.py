"""The embedded broker's folders for one test, and channels on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kombu import Connection

from bridge.celery.embedded_broker import TRANSPORT_PATH


def make_folders(root: Path) -> dict[str, str]:
    options = {
        "data_folder_in": root / "queue",
        "data_folder_out": root / "queue",
        "control_folder": root / "control",
    }
    for folder in options.values():
        folder.mkdir(exist_ok=True)
    return {name: str(folder) for name, folder in options.items()}


# Bindings are also kept in memory, once per process (kombu's BrokerState): each test
# binds to exchanges of its own, so that an earlier test's binding does not make a
# declare here a no-op.
def channel(folders: dict[str, str]) -> Any:
    connection = Connection("filesystem://", transport=TRANSPORT_PATH, transport_options=folders)
    return connection.channel()
