"""The inbox app's command groups; the shim adds `commands` to `jobbridge`."""

from __future__ import annotations

import typer

commands = typer.Typer()
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
accounts_app = typer.Typer(help="Email accounts.", no_args_is_help=True)
actions_app = typer.Typer(help="Scheduled actions.", no_args_is_help=True)
bulk_app = typer.Typer(help="Bulk processing: run rules over an inbox.", no_args_is_help=True)
commands.add_typer(db_app, name="db")
commands.add_typer(accounts_app, name="accounts")
commands.add_typer(actions_app, name="actions")
commands.add_typer(bulk_app, name="bulk")
