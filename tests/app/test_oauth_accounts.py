"""Google and Microsoft accounts' refresh tokens: where they come from, encrypted at
rest, key rotation, and the accounts file's `refresh_token_env`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from bridge.outcome import PermanentError
from bridge.store.db import session_scope
from tasks.account_connections import record_refused, rotate_tokens, save_connection
from tasks.accounts_file import AccountsFileError, parse
from tasks.accounts_import import import_file
from tasks.mail.oauth_accounts import grant_for
from tasks.mail.oauth_grant import OAuthGrant
from tasks.mail.oauth_settings import OAuthSettings
from tasks.models import EmailAccount, MailProviderKind

GOOGLE = MailProviderKind.GOOGLE
EMAIL = "ana@example.com"
OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def _settings(**values: Any) -> OAuthSettings:
    defaults: dict[str, Any] = {
        "google_client_id": "client",
        "google_client_secret": "secret",
        "microsoft_client_id": "ms-client",
        "token_encryption_key": NEW_KEY,
    }
    return OAuthSettings(**{**defaults, **values})


def _account(email: str = EMAIL) -> EmailAccount:
    with session_scope() as session:
        found = session.scalars(select(EmailAccount).where(EmailAccount.email == email)).one()
        session.expunge(found)
    return found


def test_a_connected_token_is_stored_encrypted_and_read_back() -> None:
    save_connection(GOOGLE, EMAIL, "1//refresh-token", _settings())
    stored = _account().provider_settings

    assert "1//refresh-token" not in str(stored)
    assert grant_for(EMAIL, GOOGLE, stored, _settings()).refresh_token == "1//refresh-token"


def test_a_token_from_the_previous_key_is_read_during_a_rotation() -> None:
    save_connection(GOOGLE, EMAIL, "1//old", _settings(token_encryption_key=OLD_KEY))
    rotating = _settings(token_encryption_key=NEW_KEY, token_encryption_key_previous=OLD_KEY)

    grant = grant_for(EMAIL, GOOGLE, _account().provider_settings, rotating)

    assert grant.refresh_token == "1//old"


def test_rotate_tokens_re_encrypts_with_the_new_key_so_the_old_one_can_go() -> None:
    save_connection(GOOGLE, EMAIL, "1//old", _settings(token_encryption_key=OLD_KEY))
    rotation = rotate_tokens(
        _settings(token_encryption_key=NEW_KEY, token_encryption_key_previous=OLD_KEY)
    )

    assert (rotation.rotated, rotation.failed) == (1, [])
    assert grant_for(EMAIL, GOOGLE, _account().provider_settings, _settings()).refresh_token == (
        "1//old"
    )


def test_a_token_no_key_decrypts_is_a_permanent_error_naming_the_keys() -> None:
    save_connection(GOOGLE, EMAIL, "1//old", _settings(token_encryption_key=OLD_KEY))

    with pytest.raises(PermanentError, match="TOKEN_ENCRYPTION_KEY") as caught:
        grant_for(EMAIL, GOOGLE, _account().provider_settings, _settings())
    assert "1//old" not in str(caught.value)


def test_a_bad_encryption_key_names_the_variable() -> None:
    from config import ConfigError
    from tasks.mail.oauth_settings import load_oauth_settings

    with pytest.raises(ConfigError, match="TOKEN_ENCRYPTION_KEY: must be a Fernet key"):
        load_oauth_settings(token_encryption_key="not-a-key")


@pytest.mark.parametrize("tenant", ["x%%bad", "a/b", "common?x=1"])
def test_a_microsoft_tenant_that_is_no_tenant_names_the_variable(tenant: str) -> None:
    from config import ConfigError
    from tasks.mail.oauth_settings import load_oauth_settings

    with pytest.raises(ConfigError, match="MICROSOFT_TENANT: must be common, organizations"):
        load_oauth_settings(microsoft_tenant=tenant)


@pytest.mark.parametrize(
    "tenant", ["common", "consumers", "contoso.onmicrosoft.com", "9188040d-6c67-4c5b-b112"]
)
def test_a_microsoft_tenant_id_or_domain_is_accepted(tenant: str) -> None:
    from tasks.mail.oauth_settings import load_oauth_settings

    assert load_oauth_settings(microsoft_tenant=tenant).microsoft_tenant == tenant


def test_a_token_from_the_environment_is_read_when_the_job_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANA_GOOGLE_TOKEN", "1//from-env")
    stored = {"refresh_token_env": "ANA_GOOGLE_TOKEN"}

    assert grant_for(EMAIL, GOOGLE, stored, _settings()).refresh_token == "1//from-env"


def test_an_unset_token_variable_is_named() -> None:
    with pytest.raises(PermanentError, match="NOBODY_SET_THIS is not set"):
        grant_for(EMAIL, GOOGLE, {"refresh_token_env": "NOBODY_SET_THIS"}, _settings())


def test_an_account_never_connected_says_how_to_connect_it() -> None:
    with pytest.raises(PermanentError, match=r"jobbridge accounts connect google ana@example\.com"):
        grant_for(EMAIL, GOOGLE, {}, _settings())


def test_a_missing_client_id_names_the_variable() -> None:
    with pytest.raises(PermanentError, match="MICROSOFT_CLIENT_ID is not set"):
        grant_for(EMAIL, MailProviderKind.MICROSOFT, {}, _settings(microsoft_client_id=None))


def test_the_grant_keeps_its_secrets_out_of_repr() -> None:
    grant = OAuthGrant(EMAIL, "client", "client-secret-value", "1//refresh-value")

    assert "client-secret-value" not in repr(grant)
    assert "1//refresh-value" not in repr(grant)


def test_a_refused_grant_is_recorded_on_the_account() -> None:
    account, _ = save_connection(GOOGLE, EMAIL, "1//t", _settings())
    stored = _account().provider_settings
    grant = grant_for(
        EMAIL, GOOGLE, stored, _settings(), on_refused=lambda why: record_refused(account.id, why)
    )

    error = grant.refused("google", "Token has been expired or revoked.")

    assert "jobbridge accounts connect google ana@example.com" in str(error)
    assert _account().connection_error == str(error)


def test_the_accounts_file_takes_a_refresh_token_variable(tmp_path: Path) -> None:
    file = tmp_path / "accounts.yaml"
    file.write_text(
        "accounts:\n"
        "  - {email: ana@example.com, provider: google, refresh_token_env: ANA_GOOGLE_TOKEN}\n"
    )
    import_file(file)

    assert _account().provider_settings == {"refresh_token_env": "ANA_GOOGLE_TOKEN"}


def test_importing_again_keeps_the_token_accounts_connect_stored(tmp_path: Path) -> None:
    save_connection(GOOGLE, EMAIL, "1//kept", _settings())
    file = tmp_path / "accounts.yaml"
    file.write_text("accounts:\n  - {email: ana@example.com, provider: google}\n")
    import_file(file)

    assert grant_for(EMAIL, GOOGLE, _account().provider_settings, _settings()).refresh_token == (
        "1//kept"
    )


def test_a_refresh_token_variable_on_an_imap_account_is_refused() -> None:
    with pytest.raises(AccountsFileError, match="refresh_token_env` belongs to a google"):
        parse(
            {"accounts": [{"email": EMAIL, "provider": "maildir", "maildir": "m",
                           "refresh_token_env": "X"}]},
            base=Path("."),
        )  # fmt: skip
