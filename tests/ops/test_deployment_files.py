"""The deployment files are wired to the code: Dockerfile, docker-compose.yml (local
development) and docker-compose.prod.yml (production).

Docker has no engine on these machines, so nothing here builds or starts a container: the
compose files are parsed with PyYAML (anchors and `<<` merges resolved, as compose does)
and the Dockerfile is read as text. What is checked is the wiring a typo would break
silently: service names, variable names against `Settings`, module paths in commands,
health checks, restart policies, published ports, and that no secret is written down.
"""

from __future__ import annotations

import importlib
import itertools
import json
import re
import shlex
import tomllib
import typing
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr
from typer.core import TyperGroup

from bridge.devstack import stack_commands
from bridge.web.bounded_http import UVICORN_HTTP
from config import Settings
from tests.support import ROOT
from tests.support.command_tree import subcommand
from tests.support.compose_render import interpolate

DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
README = ROOT / "README.md"
PYPROJECT = ROOT / "pyproject.toml"

DEV = "docker-compose.yml"
PROD = "docker-compose.prod.yml"
COMPOSE_FILES = [DEV, PROD]

APP_SERVICES = ("web", "worker", "beat", "flower")
STACK = {"redis", "postgres", "inngest", "migrate", *APP_SERVICES}
INNGEST_PORTS = {"8288", "8289"}
INNGEST_URL = "http://inngest:8288"
SDK_URL = "http://web:8000/api/inngest"
# The environment of a deployment that has the Inngest server's keys.
WITH_KEYS = {"INNGEST_EVENT_KEY": "e" * 32, "INNGEST_SIGNING_KEY": "5" * 64}

# The commands each app process must run: the module paths uvicorn and Celery import.
ENTRY_POINTS = {
    "web": ["uvicorn", "bridge.web:app"],
    "worker": ["celery", "-A", "tasks", "worker"],
    "beat": ["celery", "-A", "tasks", "beat"],
    "flower": ["celery", "-A", "tasks", "flower"],
}

SETTINGS_VARIABLES = frozenset(name.upper() for name in Settings.model_fields)
SECRET_SETTINGS = frozenset(
    name.upper()
    for name, field in Settings.model_fields.items()
    if field.annotation is SecretStr or SecretStr in typing.get_args(field.annotation)
)

# Variables an app container may receive that are not Settings fields, and why. Keep it
# short: anything else the app reads belongs in Settings.
THIRD_PARTY_PREFIXES = (
    "FLOWER_",  # Flower reads its own options (FLOWER_BASIC_AUTH, ...) from the environment
    "PROMETHEUS_",  # prometheus-client reads PROMETHEUS_MULTIPROC_DIR from the environment
)

# Names that hold secrets beyond Settings' SecretStr fields: the services' own passwords
# and keys (POSTGRES_PASSWORD, PGPASSWORD, Inngest's INNGEST_EVENT_KEY) and Flower's login.
_SECRET_NAME = re.compile(r"(_KEY|_KEY_FALLBACK|_TOKEN|_SECRET)$|PASSWORD|^FLOWER_BASIC_AUTH$")
# Command-line flags whose value is a secret.
_SECRET_FLAGS = ("--event-key", "--signing-key", "--basic-auth", "--basic_auth", "--password")

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; `$$` escapes.
_REFERENCE = re.compile(
    r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
)
_ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=")
_URL_PASSWORD = re.compile(r"://[^:/@\s]+:(?P<password>[^@\s]+)@")
_HEX_RUN = re.compile(r"\b[0-9a-fA-F]{32,}\b")

Spec = dict[str, Any]


# Reading the files


@cache
def compose(file: str) -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / file).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), f"{file} is not a YAML mapping"
    return loaded


def services(file: str) -> dict[str, Spec]:
    found = compose(file)["services"]
    assert isinstance(found, dict)
    return found


def service(file: str, name: str) -> Spec:
    return services(file)[name]


def environment(spec: Spec) -> dict[str, str]:
    """A service's `environment:`, map or list form, values as compose passes them."""
    env = spec.get("environment") or {}
    if isinstance(env, list):
        pairs = [item.split("=", 1) if "=" in item else [item, ""] for item in env]
        return {name: value for name, value in pairs}
    return {str(name): "" if value is None else str(value) for name, value in env.items()}


def command(spec: Spec) -> list[str]:
    """The command a service runs: its own, or the Dockerfile's CMD for the app image.
    For a `sh -c` script, the program its `exec` line starts."""
    own = spec.get("command")
    if own is None:
        return dockerfile_cmd() if "build" in spec else []
    args = shlex.split(own) if isinstance(own, str) else [str(part) for part in own]
    if args[:2] == ["sh", "-c"]:
        execs = [line.split() for line in args[2].splitlines() if line.strip().startswith("exec ")]
        return shlex.split(" ".join(execs[-1][1:])) if execs else args
    return args


def option(spec: Spec, *flags: str, variable: str | None = None) -> str | None:
    """An option's value in the service's command (`--flag value` or `--flag=value`, any
    of `flags`), else the environment `variable` the program also reads it from."""
    args = command(spec)
    for index, arg in enumerate(args):
        name, equals, inline = arg.partition("=")
        if name not in flags:
            continue
        if equals:
            return inline
        if index + 1 < len(args):
            return args[index + 1]
    return environment(spec).get(variable) if variable else None


def inngest_option(file: str, flag: str, *aliases: str) -> str | None:
    """An `inngest` option: every flag is also read from INNGEST_<FLAG>."""
    variable = "INNGEST_" + flag.upper().replace("-", "_")
    return option(service(file, "inngest"), f"--{flag}", *aliases, variable=variable)


def health_check(spec: Spec) -> str | None:
    """The health check a service's container runs, as text; None if it has none."""
    own = spec.get("healthcheck")
    if own is not None:
        if own.get("disable"):
            return None
        test = own.get("test")
        return " ".join(test) if isinstance(test, list) else test
    return dockerfile_health_check() if "build" in spec else None


def published_ports(spec: Spec) -> list[str]:
    """The container ports a service publishes on the host (`ports:`, not `expose:`)."""
    ports = []
    for entry in spec.get("ports") or []:
        if isinstance(entry, dict):
            ports.append(str(entry["target"]))
        else:
            ports.append(str(entry).split("/")[0].rsplit(":", 1)[-1])
    return ports


def depends_on(spec: Spec) -> dict[str, str]:
    deps = spec.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: str(dep.get("condition", "service_started")) for name, dep in deps.items()}


def one_shot_services(file: str) -> set[str]:
    """Steps that run and exit: something waits for them to complete successfully, or
    nothing does and they are never restarted (the sync step, last of all)."""
    awaited = {
        name
        for spec in services(file).values()
        for name, condition in depends_on(spec).items()
        if condition == "service_completed_successfully"
    }
    last = {name for name, spec in services(file).items() if spec.get("restart") == "no"}
    return awaited | last


def long_running_services(file: str) -> list[str]:
    return sorted(set(services(file)) - one_shot_services(file))


def references(text: str) -> list[re.Match[str]]:
    return list(_REFERENCE.finditer(text))


def is_secret(name: str) -> bool:
    return name in SECRET_SETTINGS or bool(_SECRET_NAME.search(name))


def is_environment_reference(value: str, *, required: bool = False) -> bool:
    """`value` is exactly one ${VAR} reference whose fallback, if any, is empty: taken
    from the environment, never written down here."""
    match = _REFERENCE.fullmatch(value)
    if match is None:
        return False
    op, arg = match.group("op"), match.group("arg")
    if required:
        return op in (":?", "?")
    return op is None or op.endswith("?") or (op.endswith("-") and arg == "")


@cache
def dockerfile() -> tuple[tuple[str, str], ...]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    current = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        keyword, _, arguments = (current + stripped).partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        current = ""
    return tuple(found)


def dockerfile_arguments(keyword: str) -> list[str]:
    return [arguments for found, arguments in dockerfile() if found == keyword]


def dockerfile_cmd() -> list[str]:
    (cmd,) = dockerfile_arguments("CMD")[-1:]
    parsed = json.loads(cmd) if cmd.startswith("[") else shlex.split(cmd)
    return [str(part) for part in parsed]


def dockerfile_health_check() -> str | None:
    checks = dockerfile_arguments("HEALTHCHECK")
    if not checks or checks[-1].upper() == "NONE":
        return None
    return checks[-1].split(" CMD ", 1)[1]


def env_example_variables() -> set[str]:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    return {m.group(1) for line in lines if (m := _ASSIGNMENT.match(line))}


def readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def settings_default(variable: str) -> str:
    """A Settings field's default as an environment value (None is "": unset)."""
    default = Settings.model_fields[variable.lower()].default
    if default is None:
        return ""
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


def strings(node: object) -> list[str]:
    """Every string value in a parsed YAML document (comments are not values)."""
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


def referenced_variables() -> set[str]:
    """The variables compose interpolates into either file."""
    return {
        match.group("name")
        for file in COMPOSE_FILES
        for value in strings(compose(file))
        for match in references(value)
    }


# Parameters, read from the files once at collection


APP_CASES = [(file, name) for file in COMPOSE_FILES for name in APP_SERVICES]
OWN_HEALTH_CHECK_CASES = [(f, name) for f in COMPOSE_FILES for name in ("worker", "beat", "flower")]
PROD_LONG_RUNNING = long_running_services(PROD)
THIRD_PARTY_IMAGE_CASES = [
    (file, name)
    for file in COMPOSE_FILES
    for name, spec in services(file).items()
    if "build" not in spec
]
SECRET_CASES = [
    (file, name, variable)
    for file in COMPOSE_FILES
    for name, spec in services(file).items()
    for variable in environment(spec)
    if is_secret(variable)
]
SETTINGS_REFERENCED = sorted(referenced_variables() & SETTINGS_VARIABLES)
OTHER_REFERENCED = sorted(referenced_variables() - SETTINGS_VARIABLES)


# The services


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_compose_file_defines_every_service_of_the_stack(file: str) -> None:
    missing = STACK - set(services(file))

    assert not missing, f"{file} lacks {sorted(missing)}"


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_app_processes_share_one_image_built_from_the_dockerfile(file: str) -> None:
    app = [service(file, name) for name in (*APP_SERVICES, "migrate")]

    assert {str(spec.get("build")) for spec in app} == {"."}
    assert len({spec.get("image") for spec in app}) == 1


# Variables given to the app


@pytest.mark.parametrize(("file", "name"), APP_CASES)
def test_app_variables_are_settings_fields_or_allowlisted(file: str, name: str) -> None:
    unknown = {
        variable
        for variable in environment(service(file, name))
        if variable not in SETTINGS_VARIABLES and not variable.startswith(THIRD_PARTY_PREFIXES)
    }

    assert not unknown, f"{file} {name}: Settings reads no {sorted(unknown)}"


@pytest.mark.parametrize(("file", "name"), APP_CASES)
def test_app_variable_fallbacks_are_the_settings_defaults(file: str, name: str) -> None:
    for variable, value in environment(service(file, name)).items():
        match = _REFERENCE.fullmatch(value)
        if variable not in SETTINGS_VARIABLES or match is None or match.group("op") != ":-":
            continue
        if match.group("name") != variable:
            continue

        assert match.group("arg") in ("", settings_default(variable)), (
            f"{file} {name}: {variable} falls back to {match.group('arg')!r}, "
            f"Settings to {settings_default(variable)!r}"
        )


@pytest.mark.parametrize(("file", "name"), APP_CASES)
def test_app_uses_the_compose_database_and_redis(file: str, name: str) -> None:
    env = environment(service(file, name))

    assert urlsplit(env["DATABASE_URL"]).hostname == "postgres"
    assert urlsplit(env["REDIS_URL"]).hostname == "redis"


# Inngest


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_inngest_image_is_pinned_to_a_release(file: str) -> None:
    image = service(file, "inngest")["image"]

    assert re.fullmatch(r"inngest/inngest:v?\d+\.\d+\.\d+", image), image


def test_both_files_run_the_same_inngest_release() -> None:
    assert service(DEV, "inngest")["image"] == service(PROD, "inngest")["image"]


@pytest.mark.parametrize(("file", "name"), THIRD_PARTY_IMAGE_CASES)
def test_every_image_names_a_version_tag(file: str, name: str) -> None:
    image = str(service(file, name)["image"])
    _, _, tag = image.rpartition(":")

    assert ":" in image and tag and tag != "latest", f"{file} {name}: {image} is not pinned"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_dev_app_talks_to_the_inngest_dev_server(name: str) -> None:
    env = environment(service(DEV, name))

    assert env.get("INNGEST_DEV", "").lower() not in ("", "0", "false", "no", "off")
    assert env["INNGEST_BASE_URL"] == INNGEST_URL


def test_dev_inngest_server_runs_dev_and_syncs_the_web_service() -> None:
    assert command(service(DEV, "inngest"))[:2] == ["inngest", "dev"]
    assert inngest_option(DEV, "sdk-url", "-u") == SDK_URL


@pytest.mark.parametrize("name", APP_SERVICES)
def test_prod_app_runs_in_cloud_mode_against_inngest_start(name: str) -> None:
    env = environment(service(PROD, name))

    assert "INNGEST_DEV" not in env, "a dev-mode app is refused by `inngest start`"
    assert interpolate(env["INNGEST_BASE_URL"], WITH_KEYS) == INNGEST_URL


@pytest.mark.parametrize("name", APP_SERVICES)
@pytest.mark.parametrize("variable", ["INNGEST_EVENT_KEY", "INNGEST_SIGNING_KEY"])
def test_prod_app_takes_the_inngest_servers_keys(name: str, variable: str) -> None:
    value = environment(service(PROD, name))[variable]

    assert [m.group("name") for m in references(value)] == [variable]


def test_prod_web_serves_no_api_docs() -> None:
    assert environment(service(PROD, "web"))["API_DOCS"] == "off"


def test_prod_app_registers_at_its_configured_origin_only() -> None:
    # Cloud mode refuses to start without it: the SDK would take a request's Host header.
    origin = environment(service(PROD, "web"))["INNGEST_SERVE_ORIGIN"]

    assert interpolate(origin, WITH_KEYS) == "http://web:8000"


def test_prod_inngest_server_runs_start() -> None:
    assert command(service(PROD, "inngest"))[:2] == ["inngest", "start"]


@pytest.mark.parametrize("flag", ["event-key", "signing-key"])
def test_prod_inngest_server_takes_its_keys_from_the_environment(flag: str) -> None:
    # Without them it idles (rolled back): tests/ops/test_prod_compose_rollback.py.
    value = inngest_option(PROD, flag)

    assert value is not None, f"inngest start gets no --{flag}"
    assert is_environment_reference(value), f"--{flag} is {value!r}"


@pytest.mark.parametrize(("flag", "host"), [("postgres-uri", "postgres"), ("redis-uri", "redis")])
def test_prod_inngest_server_stores_its_state_in_the_compose_services(flag: str, host: str) -> None:
    value = inngest_option(PROD, flag)

    assert value is not None, f"inngest start gets no --{flag}"
    assert urlsplit(value).hostname == host


def test_prod_inngest_server_syncs_the_web_service() -> None:
    assert inngest_option(PROD, "sdk-url", "-u") == SDK_URL


# Ports


def test_prod_publishes_no_inngest_port() -> None:
    published = {
        (name, port)
        for name, spec in services(PROD).items()
        for port in published_ports(spec)
        if port in INNGEST_PORTS
    }

    assert not published, f"Inngest's API, UI and gateway have no login: {published}"


def test_prod_publishes_only_the_web_port() -> None:
    publishing = {name for name, spec in services(PROD).items() if spec.get("ports")}

    assert publishing == {"web"}


# Health checks and restarts


@pytest.mark.parametrize("name", PROD_LONG_RUNNING)
def test_every_long_running_prod_service_has_a_health_check(name: str) -> None:
    assert health_check(service(PROD, name)), f"{name} has no health check"


@pytest.mark.parametrize("name", PROD_LONG_RUNNING)
def test_every_long_running_prod_service_restarts_unless_stopped(name: str) -> None:
    assert service(PROD, name).get("restart") == "unless-stopped"


@pytest.mark.parametrize("name", sorted(one_shot_services(PROD)))
def test_one_shot_prod_steps_are_not_restarted_after_they_exit(name: str) -> None:
    assert service(PROD, name).get("restart") == "no"


@pytest.mark.parametrize("name", ["redis", "postgres", "web"])
def test_dev_health_checks_cover_redis_postgres_and_web(name: str) -> None:
    assert health_check(service(DEV, name)), f"{name} has no health check"


@pytest.mark.parametrize(("file", "name"), OWN_HEALTH_CHECK_CASES)
def test_worker_beat_and_flower_replace_the_webs_health_check(file: str, name: str) -> None:
    # Without their own, they inherit the image's GET /healthz on a port nothing serves.
    check = service(file, name).get("healthcheck") or {}

    assert check.get("test") and not check.get("disable")
    assert "/healthz" not in str(check["test"])


# Secrets


@pytest.mark.parametrize(("file", "name", "variable"), SECRET_CASES)
def test_secret_variables_come_from_the_environment(file: str, name: str, variable: str) -> None:
    value = environment(service(file, name))[variable]

    assert is_environment_reference(value), f"{file} {name}: {variable} is written down"


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_urls_carry_no_literal_password(file: str) -> None:
    for name, spec in services(file).items():
        for variable, value in environment(spec).items():
            for match in _URL_PASSWORD.finditer(value):
                password = match.group("password")

                assert is_environment_reference(password), f"{file} {name}: {variable}"


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_commands_pass_no_literal_secret(file: str) -> None:
    for name, spec in services(file).items():
        args = command(spec)
        for index, arg in enumerate(args):
            flag, _, inline = arg.partition("=")
            if flag not in _SECRET_FLAGS:
                continue
            value = inline or (args[index + 1] if index + 1 < len(args) else "")

            assert is_environment_reference(value), f"{file} {name}: {flag} is written down"


@pytest.mark.parametrize("file", [*COMPOSE_FILES, "Dockerfile"])
def test_files_hold_no_key_material(file: str) -> None:
    found = _HEX_RUN.findall((ROOT / file).read_text(encoding="utf-8"))

    assert not found, f"{file} holds what looks like a key: {found}"


# Flower


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_flower_requires_basic_auth_from_the_environment(file: str) -> None:
    spec = service(file, "flower")
    value = option(spec, "--basic_auth", "--basic-auth", variable="FLOWER_BASIC_AUTH") or ""

    assert is_environment_reference(value, required=True), f"{file}: {value!r}"


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_flower_asks_the_workers_for_events(file: str) -> None:
    assert "--enable_events=True" in command(service(file, "flower"))


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_flower_keeps_its_state_on_a_volume(file: str) -> None:
    spec = service(file, "flower")
    database = option(spec, "--db", variable="FLOWER_DB")
    named_volumes = set(compose(file).get("volumes") or {})
    mounted = {
        target.rstrip("/") + "/"
        for source, _, target in (str(v).partition(":") for v in spec.get("volumes") or [])
        if source in named_volumes
    }

    assert option(spec, "--persistent", variable="FLOWER_PERSISTENT") == "True"
    assert database is not None
    assert any(database.startswith(folder) for folder in mounted), f"{file}: {database}"


# Commands


@pytest.mark.parametrize(("file", "name"), APP_CASES)
def test_app_commands_run_the_real_entry_points(file: str, name: str) -> None:
    expected = ENTRY_POINTS[name]

    assert command(service(file, name))[: len(expected)] == expected


def serves_with_bounded_http(web_command: list[str]) -> bool:
    """Whether a uvicorn command uses the protocol that bounds a request's head."""
    return any(
        flag == "--http" and value == UVICORN_HTTP
        for flag, value in itertools.pairwise(web_command)
    )


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_the_web_service_bounds_request_heads(file: str) -> None:
    assert serves_with_bounded_http(command(service(file, "web")))


def test_the_image_bounds_request_heads() -> None:
    assert serves_with_bounded_http(dockerfile_cmd())


def test_jobbridge_dev_bounds_request_heads() -> None:
    assert serves_with_bounded_http(stack_commands(8000, 5555, with_flower=False)["web"])


@pytest.mark.parametrize(("module", "attribute"), [("bridge.web", "app"), ("tasks", "app")])
def test_modules_named_in_the_commands_exist(module: str, attribute: str) -> None:
    assert hasattr(importlib.import_module(module), attribute)


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_migrate_step_upgrades_the_database_with_the_cli(file: str) -> None:
    db = subcommand("db")
    assert isinstance(db, TyperGroup)

    assert command(service(file, "migrate")) == ["jobbridge", "db", "upgrade"]
    assert "upgrade" in db.commands


@pytest.mark.parametrize(("file", "name"), APP_CASES)
def test_app_starts_only_after_the_migrations_ran(file: str, name: str) -> None:
    assert depends_on(service(file, name)).get("migrate") == "service_completed_successfully"


# The Dockerfile


def test_dockerfile_builds_on_python_3_11_slim() -> None:
    assert re.match(r"python:3\.11-slim\b", dockerfile_arguments("FROM")[-1])


def test_dockerfile_installs_the_project_with_pip() -> None:
    assert any(re.search(r"\bpip install \.(\s|$)", run) for run in dockerfile_arguments("RUN"))


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = dockerfile_arguments("USER")

    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_health_check_requests_healthz_with_python() -> None:
    check = dockerfile_health_check()

    assert check is not None
    assert json.loads(check)[0] == "python", "the slim image has no curl or wget"
    assert "http://127.0.0.1:8000/healthz" in check


def test_dockerfile_default_command_serves_the_web_app_with_uvicorn() -> None:
    web = ["uvicorn", "bridge.web:app", "--host", "0.0.0.0", "--port", "8000"]

    assert dockerfile_cmd()[: len(web)] == web


def test_project_depends_on_uvicorn_with_its_standard_extras() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]

    assert any(dep.startswith("uvicorn[standard]") for dep in dependencies)


# Documentation


@pytest.mark.parametrize("variable", SETTINGS_REFERENCED)
def test_settings_variables_the_compose_files_read_are_in_env_example(variable: str) -> None:
    assert variable in env_example_variables()


@pytest.mark.parametrize("variable", OTHER_REFERENCED)
def test_other_variables_the_compose_files_read_are_explained_in_the_readme(variable: str) -> None:
    assert variable in readme_section("## Deployment")
