"""`jobbridge`'s command tree as its root command sees it: the shim's and the app's."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup
from typer.main import get_command

from bridge.cli import app


def command_names() -> set[str]:
    root = get_command(app)
    assert isinstance(root, TyperGroup)
    return set(root.list_commands(typer.Context(root)))


def subcommand(*path: str) -> Any:
    command: Any = get_command(app)
    for name in path:
        assert isinstance(command, TyperGroup)
        command = command.get_command(typer.Context(command), name)
    assert command is not None, f"no command {' '.join(path)}"
    return command


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the tree, as the words that name it (the root: ())."""
    found: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found.append(path)
        if isinstance(command, TyperGroup):
            context = typer.Context(command)
            for name in command.list_commands(context):
                walk(command.get_command(context, name), (*path, name))

    walk(get_command(app), ())
    return found
