"""Reading an accounts file's text: YAML, or JSON for a file named *.json.

load() turns the text into data and hands it to accounts_file.parse(). A file that is
not UTF-8, not valid YAML or JSON, or empty is refused naming the file; a key given
twice in one mapping is refused naming its line (YAML) or its path (JSON).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any

import yaml

from tasks.accounts_file import (
    AccountsFile,
    AccountsFileError,
    Problem,
    invalid_file,
    parse,
    where_in_file,
)


def load(path: Path) -> AccountsFile:
    """The file's accounts, checked by parse(), or AccountsFileError naming the file or
    its bad entries."""
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark some editors add
    except UnicodeDecodeError:
        raise AccountsFileError(f"{path}: not UTF-8 text, so not {kind}") from None
    try:
        data, repeated = _json(text) if kind == "JSON" else _yaml(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise AccountsFileError(f"{path}: not valid {kind}: {_syntax_error(error)}") from None
    if repeated:
        raise invalid_file(repeated)
    if data is None:
        raise AccountsFileError(f"{path}: the file is empty; it needs an `accounts:` list")
    return parse(data, base=path.parent)


def _syntax_error(error: json.JSONDecodeError | yaml.YAMLError) -> str:
    """One line: where, and what the parser expected (PyYAML's own text spans lines)."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        what = "; ".join(filter(None, (error.context, error.problem)))
        return f"{_line(error.problem_mark)}: {what}"
    return " ".join(str(error).split())


def _line(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


# A key given twice in one mapping would be read as its last value alone (both parsers
# keep the last), so the first one would silently not count: both loaders refuse it.


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, noting each key given twice in one mapping (YAML forbids
    it), by its line. A merge key (`<<: *base`) may still be overridden: that is its use."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.repeated: list[Problem] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base constructor refuses it, saying why
            if key not in first_line:
                first_line[key] = key_node.start_mark.line + 1
                continue
            self.repeated.append(
                Problem(
                    _line(key_node.start_mark),
                    f"the key {key!r} is given twice (first on line {first_line[key]})",
                )
            )
        return super().construct_mapping(node, deep=deep)


def _yaml(text: str) -> tuple[Any, list[Problem]]:
    loader = _YamlLoader(text)
    try:
        return loader.get_single_data(), loader.repeated
    finally:
        loader.dispose()


class _JsonObject(dict[str, Any]):
    """A JSON object, remembering the keys it was given more than once."""

    repeated: list[str]


def _json_object(pairs: list[tuple[str, Any]]) -> _JsonObject:
    found = _JsonObject(pairs)
    found.repeated = [key for key, times in Counter(k for k, _ in pairs).items() if times > 1]
    return found


def _json(text: str) -> tuple[Any, list[Problem]]:
    """The data, and each key given twice in one object, by its path (json has no lines
    for the objects it built)."""
    data = json.loads(text, object_pairs_hook=_json_object)
    repeated = []
    waiting: list[tuple[tuple[str | int, ...], Any]] = [((), data)]
    while waiting:  # a loop, not recursion: the nesting is as deep as the file makes it
        loc, value = waiting.pop()
        children: Iterable[tuple[str | int, Any]] = ()
        if isinstance(value, _JsonObject):
            repeated += [
                Problem(where_in_file((*loc, key)), "given twice in one object")
                for key in value.repeated
            ]
            children = value.items()
        elif isinstance(value, list):
            children = enumerate(value)
        waiting += [((*loc, key), child) for key, child in reversed(list(children))]
    return data, repeated
