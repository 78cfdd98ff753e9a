"""The documentation is derived from the code: `.env.example` from Settings and the inbox
app's own settings models (`tasks.settings_models`), the README's "## Jobs" tables from the @job and
@cron registries, docs/JOBS.md from the jobs. These tests keep them in step, and keep the
docs inside the repository: nothing points to a file the repository does not hold."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from bridge.devstack import FlowerSettings
from config import Settings, load_settings
from tasks import CRONS, JOBS, settings_models
from tasks.ai.settings import load_ai_settings
from tasks.mail.delivery_settings import load_delivery_settings
from tasks.mail.oauth_settings import load_oauth_settings
from tests.support import ROOT
from tests.support.command_tree import command_names

ENV_EXAMPLE = ROOT / ".env.example"
README = ROOT / "README.md"
DOCS = ROOT / "docs"
JOBS_DOC = ROOT / "docs/JOBS.md"
# Where code comments and docstrings may name documents.
CODE_FOLDERS = ("bridge", "tasks", "config", "tests", "bench")

_ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
# The shim's Settings, the inbox app's own models (the AI, digest delivery, OAuth accounts)
# and the dev stack's Flower login: each reads the environment and .env, so .env.example
# lists the variables of all.
SETTINGS_MODELS: tuple[type[BaseSettings], ...] = (Settings, *settings_models, FlowerSettings)
VARIABLES = sorted(name.upper() for model in SETTINGS_MODELS for name in model.model_fields)

Row = dict[str, str]


def env_example_lines() -> list[str]:
    return ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()


def env_example_variables() -> list[str]:
    return [m.group(1) for line in env_example_lines() if (m := _ASSIGNMENT.match(line))]


def comment_above(variable: str) -> str | None:
    """The comment line right above `variable`'s assignment, or above the run of
    assignments it belongs to; None if there is a blank line or nothing instead."""
    lines = env_example_lines()
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{variable}="))
    while index > 0 and _ASSIGNMENT.match(lines[index - 1]):
        index -= 1
    above = lines[index - 1] if index > 0 else ""
    return above if above.startswith("#") else None


def readme_section(title: str) -> list[str]:
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def _cells(line: str) -> list[str]:
    return [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]


def readme_table(first_column: str) -> list[Row]:
    """The rows of the "## Jobs" table whose first header is `first_column`."""
    lines = readme_section("## Jobs")
    for index, line in enumerate(lines):
        if line.startswith("|") and _cells(line)[0] == first_column:
            header = _cells(line)
            rows = []
            for row in lines[index + 2 :]:  # skip the |---| line
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(header, _cells(row), strict=True)))
            return rows
    raise AssertionError(f"README '## Jobs' has no table starting with a {first_column!r} column")


def job_rows() -> dict[str, Row]:
    return {row["event"]: row for row in readme_table("job")}


def cron_rows() -> dict[str, Row]:
    return {row["periodic"]: row for row in readme_table("periodic")}


def column(row: Row, prefix: str) -> str:
    return next(value for name, value in row.items() if name.startswith(prefix))


# .env.example


@pytest.mark.parametrize("variable", VARIABLES)
def test_every_setting_is_in_env_example(variable: str) -> None:
    assert variable in env_example_variables()


@pytest.mark.parametrize("variable", VARIABLES)
def test_every_setting_in_env_example_has_a_comment_above_it_or_its_group(variable: str) -> None:
    comment = comment_above(variable)

    assert comment is not None, f"{variable} in .env.example has no comment line above it"
    assert not comment.startswith("# ---"), f"{variable} has only a section heading above it"


def test_env_example_names_no_variable_settings_does_not_read() -> None:
    unknown = set(env_example_variables()) - set(VARIABLES)

    assert not unknown, f".env.example names variables no settings model reads: {unknown}"


def test_env_example_lists_each_variable_once() -> None:
    names = env_example_variables()

    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    "load",
    [load_settings, load_ai_settings, load_delivery_settings, load_oauth_settings],
    ids=["Settings", "AISettings", "DeliverySettings", "OAuthSettings"],
)
def test_env_example_as_shipped_loads_to_the_defaults(
    load: Callable[..., BaseSettings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)

    from_example = load(_env_file=ENV_EXAMPLE)
    defaults = load(_env_file=None)

    assert from_example.model_dump() == defaults.model_dump()


@pytest.mark.parametrize(
    "document",
    [
        README,
        ENV_EXAMPLE,
        *sorted(DOCS.glob("*.md")),
    ],
    ids=lambda document: str(document.relative_to(ROOT)),
)
def test_documents_name_only_jobbridge_commands_that_exist(document: Path) -> None:
    # Commands as written in code spans and blocks: `jobbridge config`, .venv/bin/jobbridge dev
    text = document.read_text(encoding="utf-8")
    named = set(re.findall(r"(?:`|/|^|\s{2})jobbridge ([a-z][a-z-]*)", text, flags=re.M))

    known = command_names()
    assert named <= known, f"{document.name} names {named - known}"


# README "## Jobs"


@pytest.mark.parametrize("event", sorted(JOBS))
def test_every_job_has_a_readme_row(event: str) -> None:
    assert event in job_rows()


@pytest.mark.parametrize("event", sorted(JOBS))
def test_readme_row_gives_the_jobs_route(event: str) -> None:
    assert job_rows()[event]["route"] == JOBS[event].route


@pytest.mark.parametrize("event", sorted(JOBS))
def test_readme_row_gives_the_jobs_retries(event: str) -> None:
    assert job_rows()[event]["retries"] == str(JOBS[event].retries)


@pytest.mark.parametrize("event", sorted(JOBS))
def test_readme_row_says_whether_the_job_is_delayable(event: str) -> None:
    expected = "yes" if JOBS[event].delayable else "no"

    assert job_rows()[event]["delayable"] == expected


@pytest.mark.parametrize("event", sorted(JOBS))
def test_readme_row_says_none_only_for_jobs_without_a_per_account_limit(event: str) -> None:
    no_limit = job_rows()[event]["per-account limit"] == "none"

    assert no_limit is not JOBS[event].limited_by_key


def test_readme_names_no_job_that_does_not_exist() -> None:
    unknown = set(job_rows()) - set(JOBS)

    assert not unknown, f"README '## Jobs' lists jobs that are not declared: {unknown}"


@pytest.mark.parametrize("name", sorted(CRONS))
def test_every_cron_has_a_readme_row(name: str) -> None:
    assert name in cron_rows()


@pytest.mark.parametrize("name", sorted(CRONS))
def test_readme_row_gives_the_crons_schedule(name: str) -> None:
    assert column(cron_rows()[name], "schedule") == CRONS[name].cron


@pytest.mark.parametrize("name", sorted(CRONS))
def test_readme_row_gives_the_crons_route(name: str) -> None:
    assert column(cron_rows()[name], "route") == CRONS[name].route


def test_readme_names_no_cron_that_does_not_exist() -> None:
    unknown = set(cron_rows()) - set(CRONS)

    assert not unknown, f"README '## Jobs' lists periodic tasks that are not declared: {unknown}"


# docs/ and every document named anywhere

_CLIMBING = re.compile(r"(?<![\w.])((?:\.\./)+[\w.-][\w./-]*)")
_MD_NAME = re.compile(r"(?<![\w./:-])([\w./-]*\w\.md)\b")


def tracked_files() -> list[Path]:
    """The repository's files as git lists them, plus docs/ (new documents count before
    they are committed)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no list of tracked files")
    files = {ROOT / name for name in listed.decode().split("\0") if name}
    files.update(DOCS.glob("*.md"))
    return sorted(path for path in files if path.is_file())


def text_of(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def inside_repository(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT)


def outside_references(path: Path) -> list[str]:
    """What `path` says that points out of the repository: the `shared` folder's relative
    path, any relative path climbing out of the checkout, or an absolute path into a
    folder beside it."""
    text = text_of(path)
    found = [m.group(0) for m in re.finditer(r"\.\./shared\b", text)]
    found += [
        m.group(1)
        for m in _CLIMBING.finditer(text)
        if not inside_repository(path.parent / m.group(1))
    ]
    if ROOT.parent != ROOT.parent.parent:  # never for a checkout at the root of the disk
        beside = [entry for entry in ROOT.parent.iterdir() if entry.resolve() != ROOT]
        found += [str(entry) for entry in beside if re.search(rf"{re.escape(str(entry))}\b", text)]
    return found


def documents_named(path: Path) -> list[str]:
    """The *.md files a document or a source file names (links, code spans, comments)."""
    return [m.group(1) for m in _MD_NAME.finditer(text_of(path))]


def resolve_document(name: str, named_in: Path) -> Path:
    """Markdown names documents relative to itself; source files name them from the root."""
    base = named_in.parent if named_in.suffix == ".md" else ROOT
    return base / name.removeprefix("./")


def naming_files() -> list[Path]:
    """README, docs/ and the project's Python files (git's list: not a virtualenv that
    a tool keeps under one of the folders)."""
    code = sorted(
        path
        for path in tracked_files()
        if path.suffix == ".py" and path.relative_to(ROOT).parts[0] in CODE_FOLDERS
    )
    return [README, *sorted(DOCS.glob("*.md")), *code]


def test_no_tracked_file_points_outside_the_repository() -> None:
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in tracked_files()
        if (found := outside_references(path))
    }

    assert not offenders, f"files that point outside the repository: {offenders}"


def test_every_document_named_in_readme_and_code_exists_in_the_repository() -> None:
    missing = [
        f"{path.relative_to(ROOT)} names {name}"
        for path in naming_files()
        for name in documents_named(path)
        if not (target := resolve_document(name, path)).is_file() or not inside_repository(target)
    ]

    assert not missing, f"documents named but not in the repository: {missing}"


def test_readme_links_the_docs() -> None:
    text = README.read_text(encoding="utf-8")

    for document in ("docs/JOBS.md", "docs/PROTOCOLS.md"):
        assert f"]({document})" in text, f"README does not link {document}"


@pytest.mark.parametrize("event", sorted(JOBS))
def test_jobs_doc_names_every_jobs_event(event: str) -> None:
    assert f"`{event}`" in JOBS_DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("event", sorted(JOBS))
def test_jobs_doc_names_every_jobs_route(event: str) -> None:
    assert f"`{JOBS[event].route}`" in JOBS_DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(CRONS))
def test_jobs_doc_names_every_periodic_task_and_its_route(name: str) -> None:
    text = JOBS_DOC.read_text(encoding="utf-8")

    assert f"`{name}`" in text
    assert f"`{CRONS[name].route}`" in text
