"""`jobbridge actions`: schedule, cancel and show one scheduled action."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bridge.cli.root import emit_json, fail, parse_when, say, settings_or_exit
from tasks.cli.groups import actions_app
from tasks.cli.inbox import account_named
from tasks.mail.composing import recipients_problem
from tasks.models import ActionType, SchedulingStatus
from tasks.scheduled_actions import ActionRefused, cancel, get, schedule

# The option that gave each field schedule() may refuse.
_SCHEDULE_OPTION = {
    "label": "--label",
    "folder_name": "--folder",
    "to": "--to",
    "message_id": "--message",
    "thread_id": "--thread",
    "email_account_id": "--account",
}


@actions_app.command("schedule")
def actions_schedule(
    account: Annotated[str, typer.Option(help="account email or id")],
    action_type: Annotated[
        str,
        typer.Option(
            "--type", help="ARCHIVE, LABEL, MARK_READ, MOVE_FOLDER, REPLY, SEND_EMAIL, FORWARD"
        ),
    ],
    message: Annotated[str, typer.Option(help="message id (the Maildir key)")],
    thread: Annotated[
        str | None, typer.Option(help="thread id (defaults to the message id)")
    ] = None,
    delay: Annotated[
        str | None, typer.Option("--in", help="run after this long, e.g. 2s, 10m")
    ] = None,
    at: Annotated[str | None, typer.Option(help="run at this ISO time")] = None,
    label: Annotated[str | None, typer.Option(help="the label (LABEL)")] = None,
    folder: Annotated[str | None, typer.Option(help="the folder (MOVE_FOLDER)")] = None,
    to: Annotated[str | None, typer.Option(help="the recipient (SEND_EMAIL, FORWARD)")] = None,
    subject: str | None = None,
    content: str | None = None,
) -> None:
    """Schedule an action on a message; prints the row and where it was published."""
    settings_or_exit()

    try:
        kind = ActionType(action_type.upper())
    except ValueError:
        raise typer.BadParameter(
            f"one of {', '.join(t.value for t in ActionType)}", param_hint="--type"
        ) from None
    if to is not None and (problem := recipients_problem(to)):
        raise typer.BadParameter(problem, param_hint="--to")
    when = parse_when(at, delay)  # the options first, then the database
    found = account_named(account)
    try:
        row = schedule(
            email_account_id=found.id,
            action_type=kind,
            message_id=message,
            thread_id=thread or message,
            scheduled_for=when,
            verify_message=True,
            label=label,
            folder_name=folder,
            to=to,
            subject=subject,
            content=content,
        )
    except ActionRefused as error:
        raise typer.BadParameter(
            str(error), param_hint=_SCHEDULE_OPTION.get(error.field, error.field)
        ) from None
    emit_json(_row(row))
    if row.scheduling_status is SchedulingStatus.FAILED:
        fail(
            f"action {row.id} is saved, but its publish failed ({row.error})\n"
            "fix: the sweep publishes it once the provider is back (`jobbridge status`); "
            "do not schedule it again"
        )


def _row(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "actionType": row.action_type.value,
        "messageId": row.message_id,
        "scheduledFor": row.scheduled_for.isoformat(),
        "status": row.status.value,
        "schedulingStatus": row.scheduling_status.value,
        "provider": row.scheduled_provider,
        "scheduledId": row.scheduled_id,
        "error": row.error,
    }


@actions_app.command("cancel")
def actions_cancel(action_id: str) -> None:
    """Cancel a PENDING action (exit 1 if it was no longer pending)."""
    settings_or_exit()

    if not cancel(action_id):
        row = get(action_id)
        if row is None:
            fail(f"no action {action_id}")
        fail(f"action {action_id} is {row.status.value}, not PENDING; nothing cancelled")
    say(f"action {action_id} cancelled")


@actions_app.command("show")
def actions_show(action_id: str) -> None:
    """Print one scheduled action as JSON."""
    settings_or_exit()

    row = get(action_id)
    if row is None:
        fail(f"no action {action_id}")
    emit_json(_row(row))
