"""The `jobbridge` command itself: its global options and the helpers every command uses.

Errors are plain lines on stderr, never a traceback (unless `--debug`): one place,
`_PlainErrors`, turns whatever a command did not handle into a line naming the variable
or the service, a line with the fix, and the exit status: 2 for usage or configuration,
1 for anything that went wrong while running. What users and libraries wrote (a rule's
name, a YAML error) is printed as it is: no Rich markup, and no hard wrapping.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NoReturn

import typer
import typer.main
from rich.console import Console
from typer.core import TyperGroup

from bridge.apps import App, load_app
from bridge.cli.errors import DEBUG_HINT, explain
from config import Settings, get_settings
from config.exiting import debug_requested
from config.settings import app_module_name


class _SummariesInFull(TyperGroup):
    """A group whose list of commands gives each one's first sentence whole, wrapped
    beside its name, where click cuts it to one line ending in "...": a summary cut
    mid-phrase tells a newcomer less than one read to its end."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=sys.maxsize)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class _PlainErrors(_SummariesInFull):
    """The root command: every error a command leaves unhandled ends as plain lines.

    The app's own commands (JOBBRIDGE_APP's `commands`) are looked up when the command
    line is read, not when this module is imported: the app imports this module for its
    helpers. When the app cannot be loaded, the shim's commands still work and `--help`
    says why the app's are missing.
    """

    def _app_commands(self) -> TyperGroup | None:
        """The app's commands as a group, loaded once per command line; None when the
        app has none or cannot be loaded (then `_missing` says why)."""
        if not hasattr(self, "_contributed"):
            self._missing: str | None = None
            self._contributed: TyperGroup | None = None
            try:
                commands = loaded_app().commands
            except Exception as error:  # any failure to import the app: reported, not raised
                if debug_requested():
                    traceback.print_exc()
                self._missing = f"The app's commands are missing: {explain(error)[1]}"
                self.epilog = self._missing
            else:
                if commands is not None:
                    self._contributed = typer.main.get_group(commands)
        return self._contributed

    def list_commands(self, ctx: Any) -> list[str]:
        own = super().list_commands(ctx)
        contributed = self._app_commands()
        extra = contributed.list_commands(ctx) if contributed is not None else []
        return own + [name for name in extra if name not in own]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        contributed = self._app_commands()
        if contributed is None and self._missing is not None:
            ctx.fail(f"No such command {cmd_name!r}. {self._missing}")
        return contributed.get_command(ctx, cmd_name) if contributed is not None else None

    # `ctx` is click's Context, which typer vendors under a private name.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own: usage errors (exit 2) and deliberate exits
        except BrokenPipeError:
            reader_went_away()
        except Exception as error:
            code, message = explain(error)
            if ctx.params.get("debug") or debug_requested():
                traceback.print_exc()
                message = message.replace(f"\n{DEBUG_HINT}", "")  # it is shown above
            typer.secho(message, err=True, fg="red")
            raise typer.Exit(code) from None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode or sys.stderr.isatty():
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        # Not a terminal (a pipe, CI, a test): usage errors as click's plain lines rather
        # than typer's Rich panel, which is hard-wrapped at COLUMNS (80 by default).
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except BrokenPipeError:
            reader_went_away()
        except typer.TyperException as error:
            show = getattr(error, "show", None)
            if callable(show):
                show()  # "Usage: ...", "Try ... --help", "Error: ..."
            else:
                typer.echo(f"Error: {error.format_message()}", err=True)
            sys.exit(error.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def reader_went_away() -> NoReturn:
    """What the output was piped into stopped reading (`| head`): end quietly, as a
    process SIGPIPE ends does (128 + 13), with stdout sent nowhere so that Python's last
    flush at exit does not fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(141)


def command_group(**options: Any) -> typer.Typer:
    """A Typer app whose help is click's plain text, wrapped to the terminal: Rich's
    panels cut long option names (`--include-re…`) and break a docstring's lines at
    80 columns. Its list of commands gives their summaries whole (`_SummariesInFull`)."""
    options.setdefault("cls", _SummariesInFull)
    return typer.Typer(rich_markup_mode=None, **options)


app = command_group(
    cls=_PlainErrors,
    help="Background jobs across Inngest, QStash, Celery and direct HTTP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def console() -> Console:
    """Rich on stdout, for tables and live views only: plain lines go through say() and
    fail(), JSON through emit_json(), so that nothing a script reads is wrapped or styled.
    Made when used, so that it honours COLUMNS as it is then: a Console fixes its width
    when it is created."""
    return Console()


@app.callback()
def _global_options(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="on an error, also print its Python traceback")
    ] = False,
) -> None:
    if debug:
        # Also for what reads it outside this module: importing the app, and the
        # processes `jobbridge dev` starts. Restored when the command ends (tests run
        # many commands in one process).
        previous = os.environ.get("JOBBRIDGE_DEBUG")
        os.environ["JOBBRIDGE_DEBUG"] = "1"
        ctx.call_on_close(lambda: _restore_env("JOBBRIDGE_DEBUG", previous))
    if not logging.getLogger().handlers:
        # The commands report failures themselves: the libraries' warnings about the
        # same failure (a publish that failed, logged and then raised) would say it twice.
        logging.basicConfig(
            level=logging.INFO if debug or debug_requested() else logging.ERROR,
            format="%(levelname)s %(name)s: %(message)s",
        )


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def say(text: str) -> None:
    """One plain line on stdout, as it is: no markup, no wrapping."""
    typer.echo(text)


def fail(message: str, code: int = 1) -> NoReturn:
    """Plain lines on stderr (red on a terminal), then exit with `code`."""
    typer.secho(message, err=True, fg="red")
    raise typer.Exit(code)


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def settings_or_exit() -> Settings:
    """The settings; a bad environment ends the command (exit 2) through explain()."""
    return get_settings()


def loaded_app() -> App:
    """The app JOBBRIDGE_APP names; a wrong name ends the command (exit 2) through explain().

    Looked for in the working directory too, as `celery -A` and uvicorn do: an installed
    console script does not have it on its path."""
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    return load_app(app_module_name())


_DURATION = re.compile(r"^(\d+)([smhd])$")


def parse_when(at: str | None, delay: str | None, at_option: str = "--at") -> datetime:
    """The time `--in` (a delay) or `at` (ISO 8601, the option `at_option`) names; now
    without either."""
    now = datetime.now(UTC)
    if delay and at:
        raise typer.BadParameter(f"give --in or {at_option}, not both", param_hint="--in")
    if delay:
        match = _DURATION.match(delay)
        if not match:
            raise typer.BadParameter(
                "use a number and s, m, h or d, e.g. 2s or 10m", param_hint="--in"
            )
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        try:
            return now + timedelta(**{unit: int(match.group(1))})
        except OverflowError:
            raise typer.BadParameter("too far ahead", param_hint="--in") from None
    if at:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise typer.BadParameter(
                "use ISO 8601, e.g. 2026-12-01T09:00:00Z", param_hint=at_option
            ) from None
        return in_utc(when, at_option)
    return now


def in_utc(when: datetime, option: str) -> datetime:
    """A time an option gave, in UTC; BadParameter naming `option` when it has no
    timezone, or its UTC falls outside years 1 to 9999."""
    if when.tzinfo is None:
        raise typer.BadParameter("add a timezone, e.g. Z or +01:00", param_hint=option)
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise typer.BadParameter("not a time UTC can hold", param_hint=option) from None
