"""Commands of the shim itself, for any app on it: `config`, `enqueue`, `dev`."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.table import Table
from rich.text import Text

from bridge.cli.root import (
    app,
    console,
    emit_json,
    fail,
    loaded_app,
    parse_when,
    settings_or_exit,
)
from bridge.devstack import FlowerSettings, run_dev_stack
from bridge.devstack_checks import StackCannotStart
from bridge.errors import InvalidPayload
from bridge.publishing import enqueue, validate
from config import Settings, read_settings, resolve_chain
from config.broker import EMBEDDED_BROKER_URL, redacted_url
from config.rollback import rollback_plan

_SECRET_FIELDS = {
    "inngest_event_key",
    "inngest_signing_key",
    "inngest_signing_key_fallback",
    "qstash_token",
    "qstash_current_signing_key",
    "qstash_next_signing_key",
    "internal_api_key",
    "cron_secret",
}


def _masked(name: str, value: Any) -> str:
    if value is None:
        return "-"
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    if isinstance(value, SecretStr) and name not in _SECRET_FIELDS:  # the app's secrets
        return f"set ({len(text)} chars)"
    if name in _SECRET_FIELDS:
        return f"{text[:4]}…({len(text)} chars)" if len(text) > 8 else "****"
    # A URL shows where (scheme, host, port, path), never the password in it.
    return redacted_url(text) if "://" in text else text


def _broker(settings: Settings) -> str:
    """The broker in use: what it is, and where (its folder, or its URL without password)."""
    if settings.broker_kind == "filesystem":
        return f"filesystem {settings.broker_folder}"
    return f"{settings.broker_kind} {redacted_url(settings.broker_url)}"


@app.command("config")
def show_config() -> None:
    """Print the effective provider chain, why each link was chosen or skipped, and settings."""
    settings = settings_or_exit()
    flower = read_settings(FlowerSettings)  # checked as `jobbridge dev` checks it
    chain = resolve_chain(settings)
    table = Table(title="provider chain (publish order)")
    for column in ("#", "provider", "used", "why"):
        table.add_column(column, overflow="fold")
    for index, link in enumerate(chain.links, 1):
        table.add_row(
            str(index) if link.used else "",
            link.provider.value,
            "yes" if link.used else "no",
            Text(link.reason),
        )
    console().print(table)
    rollback = rollback_plan(settings)
    console().print(Text(f"rollback to QStash (now: {rollback.phase}):", style="bold"))
    for number, step in enumerate(rollback.steps, 1):
        console().print(Text(f"  {number}. {step}"))
    values = Table(title="settings (secrets masked)")
    values.add_column("variable", overflow="fold")
    values.add_column("value", overflow="fold")  # a path or URL cut short names nothing
    # Text, not str: a value is the user's, printed as it is, never read as Rich markup.
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name == "broker_url" and value == EMBEDDED_BROKER_URL:
            value = None  # unset, and no REDIS_URL: the embedded broker, "(broker)" below
        values.add_row(name.upper(), Text(_masked(name, value)))
    values.add_row("FLOWER_BASIC_AUTH", Text(_masked("flower", flower.flower_basic_auth)))
    values.add_row("(database)", Text(_masked("database_url", settings.sqlalchemy_url)))
    values.add_row("(broker)", Text(_broker(settings)))
    console().print(values)
    for model in loaded_app().settings_models:
        own = read_settings(model)
        table = Table(title=f"{model.__name__} (the app's; secrets masked)")
        table.add_column("variable", overflow="fold")
        table.add_column("value", overflow="fold")
        for name in type(own).model_fields:
            table.add_row(name.upper(), Text(_masked(name, getattr(own, name))))
        console().print(table)


@app.command("enqueue")
def enqueue_job(
    job: str,
    data: Annotated[str, typer.Option(help="the payload as a JSON object (camelCase fields)")],
    dedup_id: Annotated[str | None, typer.Option(help="idempotency key")] = None,
    at: Annotated[
        str | None, typer.Option(help="deliver at this ISO time (delayable jobs)")
    ] = None,
) -> None:
    """Publish one job through the provider chain and print the receipt."""
    settings_or_exit()
    if dedup_id is not None and not dedup_id.strip():
        # Left empty, it would silently become a random key: no idempotency at all.
        raise typer.BadParameter("must not be empty", param_hint="--dedup-id")
    registry = loaded_app().registry
    try:
        payload = json.loads(data)
    except RecursionError:
        raise typer.BadParameter(
            "not JSON this app accepts: nested too deeply", param_hint="--data"
        ) from None
    except ValueError as error:  # not JSON, or an integer over Python's digit limit
        raise typer.BadParameter(f"not JSON: {error}", param_hint="--data") from None
    if not isinstance(payload, dict):
        raise typer.BadParameter(
            'must be a JSON object, e.g. \'{"scheduledActionId": "a1"}\'', param_hint="--data"
        )
    try:
        spec = registry.job_for(job)
    except KeyError as error:
        fail(str(error.args[0]))  # the message itself: str(KeyError) would quote it
    when = parse_when(at, None) if at else None
    if when is not None and not spec.delayable:
        raise typer.BadParameter(
            f"{spec.event} runs when it is delivered: it cannot be given a time",
            param_hint="--at",
        )
    try:
        valid = validate(spec, payload)
    except InvalidPayload as error:
        raise typer.BadParameter(str(error), param_hint="--data") from None
    try:
        receipt = enqueue(spec, valid, at=when, dedup_id=dedup_id)
    except ValueError as error:
        fail(str(error))
    emit_json(
        {
            "provider": receipt.provider.value,
            "id": receipt.id,
            "deduplicated": receipt.deduplicated,
        }
    )


@app.command("dev")
def dev(
    port: Annotated[int, typer.Option(min=1, max=65535, help="web's port")] = 8000,
    flower_port: Annotated[int, typer.Option(min=1, max=65535, help="Flower's port")] = 5555,
    flower: Annotated[bool, typer.Option(help="also start Flower")] = True,
) -> None:
    """Check the ports and the broker, prepare the app (the inbox app: migrate, seed a demo
    account), then run web, worker, beat (and Flower) until Ctrl-C. Scrape-ready: without
    METRICS_TOKEN one is made and kept in DATA_DIR/metrics_token; the worker serves its
    metrics on METRICS_PORT (9100)."""
    if flower and port == flower_port:
        fail(f"--port and --flower-port are both {port}: give Flower another (or --no-flower)", 2)
    settings = settings_or_exit()
    found = loaded_app()
    try:
        status = run_dev_stack(
            settings, found, port=port, flower_port=flower_port, with_flower=flower
        )
    except StackCannotStart as blocked:
        fail(str(blocked))  # a port taken, the broker down: nothing was started
    sys.exit(status)
