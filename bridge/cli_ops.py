"""cli_ops: commands registered on `bridge.cli.app`."""

from __future__ import annotations
