"""`jobbridge keys`: fresh Inngest keys, written into an env file in place."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

EVENT_KEY_BYTES = 16
SIGNING_KEY_BYTES = 32


@dataclass(frozen=True)
class InngestKeys:
    event_key: str
    signing_key: str

    def env(self) -> dict[str, str]:
        return {"INNGEST_EVENT_KEY": self.event_key, "INNGEST_SIGNING_KEY": self.signing_key}


def generate_keys() -> InngestKeys:
    # Plain lowercase hex, no `signkey-<env>-` prefix: `inngest start` takes the signing
    # key as hex and hashes it with bytes.fromhex, and Settings accepts it as is.
    return InngestKeys(
        event_key=secrets.token_hex(EVENT_KEY_BYTES),
        signing_key=secrets.token_hex(SIGNING_KEY_BYTES),
    )


@dataclass(frozen=True)
class EnvFileUpdate:
    written: list[str]
    kept: list[str]


_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def _is_empty(value: str) -> bool:
    # `NAME=`, `NAME=""`, `NAME=''` or `NAME= # comment` (as .env.example ships them)
    # mean unset to Settings.
    text = "" if value.strip().startswith("#") else value.split(" #", 1)[0].strip()
    return text in {"", '""', "''"}


def write_env_file(path: Path, values: dict[str, str]) -> EnvFileUpdate:
    """Add `values` to a dotenv file, never changing a variable that already has a value.

    dotenv's last assignment wins, so that is the one looked at: a variable whose last
    assignment is empty is filled in on that line (one assignment per name keeps the file
    readable); one never assigned is appended. The file is replaced atomically (a crash
    must not leave a half-written .env) and a new one is private, since it holds secrets.
    """
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    last: dict[str, tuple[int, str]] = {}  # name -> (line index, value) of its last assignment
    for index, line in enumerate(lines):
        match = _ASSIGNMENT.match(line)
        if match and match.group(1) in values:
            last[match.group(1)] = (index, match.group(2))
    kept: list[str] = []
    written: list[str] = []
    for name, value in values.items():
        if name not in last:
            lines.append(f"{name}={value}")
        elif _is_empty(last[name][1]):
            lines[last[name][0]] = f"{name}={value}"
        else:
            kept.append(name)
            continue
        written.append(name)
    if written:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except OSError as error:  # named by the file asked for, not the temporary one
            raise OSError(error.errno, error.strerror, str(path)) from None
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(temporary, path)
    return EnvFileUpdate(written=written, kept=kept)
