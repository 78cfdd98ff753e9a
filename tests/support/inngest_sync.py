"""The functions the web server registers with Inngest, as Inngest receives them: a
signed sync (PUT /api/inngest), read back from the Inngest API double."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
from inngest._internal.net import sign_request

from tests.support import env

if TYPE_CHECKING:
    from bridge.registry import CronSpec, JobSpec


def synced_functions(web: str, inngest_api: Any) -> dict[str, dict[str, Any]]:
    """Function id -> its registered config, from one sync of the server at `web`."""
    before = len(inngest_api.registrations)
    signature = str(sign_request(b"", env.INNGEST_SIGNING_KEY))
    response = httpx.put(web + "/api/inngest", headers={"X-Inngest-Signature": signature})
    assert response.status_code == 200 and "error" not in response.json(), response.text
    (registration,) = inngest_api.registrations[before:]
    return {fn["id"]: fn for fn in registration["body"]["functions"]}


def expected_function_ids(app_id: str = "inbox-zero") -> set[str]:
    """Every function the app registers: one per job and cron; for a job with an
    on_failure hook, the SDK's failure function and, where a finish timeout can cancel a
    run, the function that hears of it (bridge/inngest/functions.py)."""
    from tasks import CRONS, JOBS

    specs: list[JobSpec[Any] | CronSpec] = [*JOBS.values(), *CRONS.values()]
    ids = {f"{app_id}-{spec.fn_id}" for spec in specs}
    ids |= {f"{app_id}-{spec.fn_id}-failure" for spec in JOBS.values() if spec.on_failure}
    ids |= {f"{app_id}-{spec.fn_id}-timed-out" for spec in timed_out_jobs()}
    return ids


def served_function_count() -> int:
    """The functions the app serves itself, as its inspection counts them: the SDK's
    derived failure functions are not among them."""
    from tasks import CRONS, JOBS

    return len(JOBS) + len(CRONS) + len(timed_out_jobs())


def timed_out_jobs() -> list[Any]:
    from tasks import JOBS

    return [s for s in JOBS.values() if s.on_failure and not s.delayable and s.cancel_key is None]
