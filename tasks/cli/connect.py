"""`jobbridge accounts connect`, `new-key` and `rotate-tokens`: Google and Microsoft
accounts through OAuth, their refresh tokens encrypted at rest."""

from __future__ import annotations

import io
import sys
from enum import StrEnum
from typing import Annotated

import typer

from bridge.cli.root import fail, say, settings_or_exit
from bridge.outcome import PermanentError
from tasks.account_connections import check_can_connect, rotate_tokens, save_connection
from tasks.cli.groups import accounts_app
from tasks.mail.oauth_accounts import client_of
from tasks.mail.oauth_connect import (
    LoopbackOptions,
    LoopbackPortUnavailable,
    obtain_refresh_token,
)
from tasks.mail.oauth_settings import load_oauth_settings
from tasks.mail.token_vault import TokenKeyMissing, new_key
from tasks.models import MailProviderKind


class OAuthProvider(StrEnum):
    GOOGLE = "google"
    MICROSOFT = "microsoft"


@accounts_app.command("connect")
def accounts_connect(
    provider: Annotated[OAuthProvider, typer.Argument(help="google or microsoft")],
    email: Annotated[str, typer.Argument(help="the account's address")],
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="open the sign-in page in a browser")
    ] = True,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="loopback port for the redirect (0: any)")
    ] = 0,
    timeout: Annotated[
        float, typer.Option(min=1, help="seconds to wait for the sign-in to come back")
    ] = 300,
) -> None:
    """Sign in to a Google or Microsoft account (OAuth, loopback redirect) and store its
    refresh token, encrypted with TOKEN_ENCRYPTION_KEY."""
    settings_or_exit()
    settings = load_oauth_settings()
    kind = MailProviderKind(provider.value)
    # Configuration first (exit 2, as for any bad variable), before anyone signs in.
    if settings.token_encryption_key is None:
        fail(
            "TOKEN_ENCRYPTION_KEY is not set; it encrypts the stored refresh token. Make one "
            "with `jobbridge accounts new-key` and keep it with your other secrets",
            code=2,
        )
    try:
        client_of(kind, settings)
    except PermanentError as error:
        fail(str(error), code=2)
    options = LoopbackOptions(port=port, open_browser=browser, timeout_seconds=timeout)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # The sign-in address must show now, also through a pipe, not when the command ends.
        sys.stdout.reconfigure(line_buffering=True)
    try:
        check_can_connect(kind, email)
        token = obtain_refresh_token(kind, email, settings, options, say)
        account, created = save_connection(kind, email, token, settings)
    except LoopbackPortUnavailable as error:
        raise typer.BadParameter(
            f"{error}; choose another, or 0 for any", param_hint="--port"
        ) from None
    except PermanentError as error:
        fail(str(error))
    state = "connected new" if created else "connected"
    say(f"{state} {kind.value} account {account.email} id={account.id}")


@accounts_app.command("new-key")
def accounts_new_key() -> None:
    """Print a new TOKEN_ENCRYPTION_KEY (a Fernet key)."""
    say(new_key())


@accounts_app.command("rotate-tokens")
def accounts_rotate_tokens() -> None:
    """Re-encrypt every stored refresh token with TOKEN_ENCRYPTION_KEY (the old key in
    TOKEN_ENCRYPTION_KEY_PREVIOUS); afterwards the old key can be removed."""
    settings_or_exit()
    settings = load_oauth_settings()
    if settings.token_encryption_key is None:
        fail(str(TokenKeyMissing.for_rotation()), code=2)
    rotation = rotate_tokens(settings)
    say(f"re-encrypted {rotation.rotated} refresh token(s) with TOKEN_ENCRYPTION_KEY")
    for line in rotation.failed:
        typer.secho(line, err=True, fg="red")
    if rotation.failed:
        raise typer.Exit(1)
