"""One definition: the registry, what Inngest is told at sync, the inspection, the
web server's routes and the README's tables all name the same jobs, routes and limits."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from inngest._internal.net import sign_request, sign_response

from bridge.registry import CronSpec, JobSpec
from tasks import CRONS, JOBS
from tests.support import ROOT, env
from tests.support.inngest_sync import (
    expected_function_ids,
    served_function_count,
    synced_functions,
)

README = ROOT / "README.md"


def test_sync_registers_one_function_per_job_and_cron(web: str, inngest_api: Any) -> None:
    functions = synced_functions(web, inngest_api)
    assert set(functions) == expected_function_ids()


def test_synced_functions_carry_the_declared_events_retries_and_limits(
    web: str, inngest_api: Any
) -> None:
    functions = synced_functions(web, inngest_api)
    for spec in JOBS.values():
        fn = functions[f"inbox-zero-{spec.fn_id}"]
        assert fn["triggers"] == [{"event": spec.event}]
        assert fn["steps"]["step"]["retries"]["attempts"] == spec.retries
        concurrency = [(c["limit"], c["key"]) for c in fn.get("concurrency") or []]
        expected = [(spec.concurrency, f"event.data.{spec.key}")] if spec.concurrency else []
        assert concurrency == expected, spec.event
        throttle = fn.get("throttle")
        assert (throttle["limit"] if throttle else None) == (
            spec.throttle.limit if spec.throttle else None
        ), spec.event
    for cron in CRONS.values():
        triggers = [{"cron": cron.cron}, *({"event": event} for event in cron.events)]
        assert functions[f"inbox-zero-{cron.fn_id}"]["triggers"] == triggers


def test_the_sweep_also_triggers_on_the_replaced_apps_cleanup_event(
    web: str, inngest_api: Any
) -> None:
    sweep = synced_functions(web, inngest_api)["inbox-zero-scheduled-actions-sweep"]
    assert {"event": "inbox-zero/cleanup.scheduled-actions"} in sweep["triggers"]


def test_sync_authenticates_with_the_hashed_signing_key(web: str, inngest_api: Any) -> None:
    import hashlib

    synced_functions(web, inngest_api)
    key = env.INNGEST_SIGNING_KEY.removeprefix("signkey-test-")
    expected = "Bearer " + hashlib.sha256(bytes.fromhex(key)).hexdigest()
    assert inngest_api.registrations[-1]["authorization"] == expected


def test_signed_inspection_counts_every_function(web: str) -> None:
    signature = str(sign_request(b"", env.INNGEST_SIGNING_KEY))
    body = httpx.get(web + "/api/inngest", headers={"X-Inngest-Signature": signature}).json()
    assert body["authentication_succeeded"] is True
    assert body["function_count"] == served_function_count()
    assert body["mode"] == "cloud"


@pytest.mark.parametrize("path", ["/api/inngest", "/api/inngest%0A"])  # the router's both
def test_signed_inspection_shows_no_hash_of_any_key(web: str, path: str) -> None:
    # An empty body's signature is easy to come by (`jobbridge sync --url` sends one): it
    # must not buy the hashes of the keys, one of which authenticates the app to Inngest.
    signature = str(sign_request(b"", env.INNGEST_SIGNING_KEY))
    response = httpx.get(web + path, headers={"X-Inngest-Signature": signature})
    assert response.status_code == 200
    assert response.json()["authentication_succeeded"] is True
    assert not [key for key in response.json() if key.endswith("_hash")]


def answer_signature_verifies(response: httpx.Response) -> bool:
    """Whether the answer's X-Inngest-Signature is the SDK's signature of its body."""
    fields = dict(part.split("=", 1) for part in response.headers["x-inngest-signature"].split("&"))
    expected = sign_response(response.content, env.INNGEST_SIGNING_KEY, int(fields["t"]))
    return expected == response.headers["x-inngest-signature"]


def test_signed_inspection_is_signed_as_it_is_sent(web: str) -> None:
    signature = str(sign_request(b"", env.INNGEST_SIGNING_KEY))
    response = httpx.get(web + "/api/inngest", headers={"X-Inngest-Signature": signature})
    assert answer_signature_verifies(response)


def test_an_in_band_sync_answer_shows_no_hash_of_any_key_and_is_signed_as_sent(
    web: str,
) -> None:
    body = json.dumps({"url": "https://jobs.example.test/api/inngest"}).encode()
    response = httpx.put(
        web + "/api/inngest",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Inngest-Signature": str(sign_request(body, env.INNGEST_SIGNING_KEY)),
            "X-Inngest-Sync-Kind": "in_band",
        },
    )
    assert response.status_code == 200, response.text
    assert "_hash" not in response.text
    assert response.json()["inspection"]["function_count"] == served_function_count()
    assert answer_signature_verifies(response)


def test_web_server_has_one_post_route_per_job_and_cron(web: str) -> None:
    paths = httpx.get(web + "/openapi.json").json()["paths"]
    specs: list[JobSpec[Any] | CronSpec] = [*JOBS.values(), *CRONS.values()]
    for spec in specs:
        assert "post" in paths[spec.route], spec.route


def readme_job_rows() -> dict[str, list[str]]:
    section = README.read_text().split("## Jobs", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[1].startswith("`inbox-zero/"):
            rows[cells[1].strip("`")] = cells
    return rows


def test_readme_job_table_states_each_jobs_limit(web: str) -> None:
    rows = readme_job_rows()
    assert set(rows) == set(JOBS)
    for event, spec in JOBS.items():
        limit = rows[event][4]
        parts = []
        if spec.concurrency:
            parts.append(f"{spec.concurrency} at a time")
        if spec.throttle:
            period = spec.throttle.period_seconds
            parts.append(f"{spec.throttle.limit} per {'second' if period == 1 else f'{period} s'}")
        assert limit == ("; ".join(parts) or "none"), event
        assert re.fullmatch(r"`[^`]+`", rows[event][2]) and rows[event][2].strip("`") == spec.route
