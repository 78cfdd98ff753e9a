"""A compose file rendered with a given environment, as `docker compose config` renders
it (Docker has no engine or compose plugin on these machines): YAML with anchors and `<<`
merges resolved, then every string interpolated by the Compose Specification's rules:
`$$` is a literal `$`; `$VAR` and `${VAR}` its value ("" when unset); `${VAR:-x}` x when
unset or empty, `${VAR-x}` x when unset; `${VAR:?e}` / `${VAR?e}` stop with e; `${VAR:+x}`
x when set and not empty, `${VAR+x}` x when set."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

_TOKEN = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    """A `${VAR:?error}` whose variable is unset (or empty): compose refuses the file."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        current = env.get(name)
        present = current is not None
        filled = bool(current)
        if op == ":-":
            return current if filled else arg  # type: ignore[return-value]
        if op == "-":
            return current if present else arg  # type: ignore[return-value]
        if op in (":?", "?") and not (filled if op == ":?" else present):
            raise MissingVariable(f"{name}: {arg}")
        if op == ":+":
            return arg if filled else ""
        if op == "+":
            return arg if present else ""
        return current or ""

    return _TOKEN.sub(value, text)


def render(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), f"{path} is not a YAML mapping"
    rendered = _render(loaded, env)
    assert isinstance(rendered, dict)
    return rendered


def _render(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _render(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_render(item, env) for item in node]
    return interpolate(node, env) if isinstance(node, str) else node


def service_environment(document: Mapping[str, Any], name: str) -> dict[str, str]:
    """The environment a rendered service's container gets (map form), "" for null."""
    env = document["services"][name].get("environment") or {}
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def shell_script(document: Mapping[str, Any], name: str) -> str:
    """The script of a rendered service whose command is `sh -c <script>`."""
    command = document["services"][name]["command"]
    assert command[:2] == ["sh", "-c"], f"{name} runs {shlex.join(command)}, not sh -c"
    return str(command[2])
