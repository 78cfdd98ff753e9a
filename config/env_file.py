"""The .env file's own syntax. python-dotenv (which pydantic-settings reads it with)
skips a line it cannot parse without a word: a `DATABASE_URL="...` whose quote is never
closed would leave the app on its embedded default while its user thinks otherwise."""

from __future__ import annotations

from pathlib import Path

from dotenv.parser import parse_stream

ENV_FILE = Path(".env")


def unreadable_lines(path: Path = ENV_FILE) -> list[str]:
    """One line per statement of `path` that python-dotenv cannot read, naming its line
    and the variable it seems to set (never its value: it may be a secret)."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as stream:
        bad = [binding.original for binding in parse_stream(stream) if binding.error]
    return [
        f"{path.resolve()} line {original.line}{_name_in(original.string)} cannot be read: "
        "write NAME=value, with any quote closed"
        for original in bad
    ]


def _name_in(statement: str) -> str:
    name = statement.partition("=")[0].strip().removeprefix("export ").strip()
    return f" ({name})" if name.isidentifier() else ""
