"""The inbox app's command groups; the shim adds `commands` to `jobbridge`."""

from __future__ import annotations

from bridge.cli.root import command_group

commands = command_group()
db_app = command_group(help="Database schema.", no_args_is_help=True)
accounts_app = command_group(help="Email accounts.", no_args_is_help=True)
actions_app = command_group(help="Scheduled actions.", no_args_is_help=True)
bulk_app = command_group(help="Bulk processing: run rules over an inbox.", no_args_is_help=True)
commands.add_typer(db_app, name="db")
commands.add_typer(accounts_app, name="accounts")
commands.add_typer(actions_app, name="actions")
commands.add_typer(bulk_app, name="bulk")
