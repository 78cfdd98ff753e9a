"""`jobbridge`: the shim's commands (`config`, `enqueue`, `dev`, `keys`, `audit`, `sync`,
`status`, `qstash`) and those the app on it contributes (JOBBRIDGE_APP, default `tasks`: the
inbox app's `db`, `accounts`, `demo`, `bulk`, `clean`, `categorize`, `digest`,
`actions`, `sweep`, `migrate`).

`root` holds the command and the helpers; each module below adds its commands to it
when imported here, and none imports this package back.
"""

# isort: skip_file
# The modules are imported in the order `jobbridge --help` lists their commands.
from __future__ import annotations

from bridge.cli.root import app
from bridge.cli import shim, ops, qstash

__all__ = ["app", "ops", "qstash", "shim"]
