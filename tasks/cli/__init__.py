"""The inbox app's commands, which the shim adds to `jobbridge` (bridge.apps)."""

# isort: skip_file
# The modules are imported in the order `jobbridge --help` lists their commands.
from __future__ import annotations

from tasks.cli.groups import commands
from tasks.cli import inbox, actions, connect, migrate

__all__ = ["actions", "commands", "connect", "inbox", "migrate"]
