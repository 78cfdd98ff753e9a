"""The inbox app's own settings (the AI, digest delivery, OAuth accounts) and the variables
its accounts file names reach every app process of both compose files: each reads .env.
(tests/ops/test_docs_in_step.py keeps .env.example in step with the settings models.)"""

from __future__ import annotations

import pytest

from tests.ops.test_deployment_files import APP_CASES, service


@pytest.mark.parametrize(("file", "name"), APP_CASES)
def test_app_process_reads_the_env_file_when_there_is_one(file: str, name: str) -> None:
    env_files = service(file, name).get("env_file")

    assert env_files == [{"path": ".env", "required": False}]
