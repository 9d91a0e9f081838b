"""docker-compose.yml and .env.example against the settings object (there is no Docker
engine on the development machines: the file is parsed and checked, and the app's own
tests cover each backend — PostgreSQL, the S3 protocol, Redis — for real)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from server.settings import COMPOSE_VARIABLES, describe, env_example

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"app", "worker", "postgres", "minio", "minio-init", "redis", "coturn"}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_env_example_is_current() -> None:
    assert (ROOT / ".env.example").read_text() == env_example(), \
        "regenerate it: hoidong settings --env > .env.example"


def test_every_service_is_there_with_a_health_check() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        if name != "minio-init":  # a one-shot job; the others wait for it to succeed
            assert "healthcheck" in service, name
    assert services["app"]["depends_on"]["minio-init"]["condition"] == \
        "service_completed_successfully"


def test_the_app_and_workers_agree_and_use_real_settings() -> None:
    services = compose()["services"]
    known = {s.env for s in describe()}
    app, worker = services["app"]["environment"], services["worker"]["environment"]
    assert app == worker, "app and workers must see the same database, store and queue"
    for key in app:
        assert key in known, key
    assert app["HOIDONG_JOB_QUEUE"] == "redis" and app["HOIDONG_STORAGE_BACKEND"] == "minio"
    assert app["HOIDONG_RUN_WORKER"] == "false"  # transcription in the worker service
    assert services["worker"]["command"] == ["hoidong", "worker"]
    assert app["HOIDONG_S3_OBJECT_LOCK"] == "true"
    # The services the app talks to are the ones defined here.
    assert "@postgres:5432/" in app["HOIDONG_DATABASE_URL"]
    assert app["HOIDONG_S3_ENDPOINT"].startswith("minio:")
    assert app["HOIDONG_REDIS_URL"].startswith("redis://redis:")


def test_turn_and_storage_secrets_are_shared_not_copied() -> None:
    services = compose()["services"]
    app = services["app"]["environment"]
    assert app["HOIDONG_TURN_SECRET"] == "${TURN_SECRET}"
    assert "--static-auth-secret=${TURN_SECRET}" in services["coturn"]["command"]
    assert "--use-auth-secret" in services["coturn"]["command"]
    assert app["HOIDONG_S3_ACCESS_KEY"] == services["minio"]["environment"]["MINIO_ROOT_USER"]
    assert app["HOIDONG_S3_SECRET_KEY"] == \
        services["minio"]["environment"]["MINIO_ROOT_PASSWORD"]
    assert "--with-lock" in services["minio-init"]["command"][0]


def test_every_variable_the_compose_file_reads_is_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{(\w+)\}", text))
    defined = {name for name, _, _ in COMPOSE_VARIABLES}
    assert used and used <= defined, used - defined
    example = (ROOT / ".env.example").read_text()
    for name in defined:
        assert re.search(rf"^{name}=", example, re.M), name
