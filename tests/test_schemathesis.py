"""schemathesis against ``/api/openapi.json`` on a live server (issue 10).

The app runs on a real port (``tests.conftest.start_app``, SQLite, files in a temporary
data directory, no transcription worker). ``schemathesis run`` — its own command line,
in a subprocess, so the server's event loop keeps serving — loads the schema from the
live ``/api/openapi.json`` and runs all its phases (examples, coverage, fuzzing, and
stateful sequences that follow the responses' ids) over every operation, positive and
negative data, twice: logged in as the administrator (``POST /api/login``: the login
cookie and its CSRF token, as the staff pages send them; ``POST /api/logout`` left out of
this run, which it would end) and with no credentials at all.

Checks: no 5xx (``not_a_server_error``), every status, content type, header and body as
the document declares them, schema-violating requests refused, 405 with ``Allow`` for
undeclared methods, and a secured operation refusing a request without credentials.
Not run: ``positive_data_acceptance`` (some refusals are rules a JSON Schema cannot say:
a schedule's end after its start, the dossier's own id typed again to confirm a
retention action, no NUL characters, a name not only spaces — each such refusal is
still checked to be a declared 4xx with the bilingual error body) and
``object_level_authorization`` (one account; the role table is ``tests/test_api.py``'s).

In CI each operation gets at most ``HOIDONG_SCHEMATHESIS_EXAMPLES`` (default 5) cases
in the fuzzing phase (the coverage phase's boundary cases and the stateful sequences come
on top), with a fixed seed (``HOIDONG_SCHEMATHESIS_SEED``): under a minute on two idle
cores. Longer::

    HOIDONG_SCHEMATHESIS_EXAMPLES=100 HOIDONG_SCHEMATHESIS_SEED=$RANDOM \\
        .venv/bin/pytest tests/test_schemathesis.py -p no:cacheprovider

``HOIDONG_WRITE_RESULTS=1`` writes the figures to
``bench/results/reliability/schemathesis.json``. The ``test_found_*`` tests below replay
what it found, whatever the seed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.auth import COOKIE_NAME, CSRF_HEADER
from tests.conftest import ADMIN_PASSWORD, Running, make_settings, need, start_app

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "reliability" / "schemathesis.json"
EXAMPLES = int(os.environ.get("HOIDONG_SCHEMATHESIS_EXAMPLES", "5"))
SEED = int(os.environ.get("HOIDONG_SCHEMATHESIS_SEED", "20261201"))
WRITE_RESULTS = os.environ.get("HOIDONG_WRITE_RESULTS", "") == "1"

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
    "use_after_free",
    "ensure_resource_availability",
)

# 413 (body over the JSON limit) and 415 (a document whose bytes are not its type)
# refuse a request as surely as a 400 does. A document upload's negative cases are not
# judged: its form fields are text on the wire, so a field "made null" arrives as the
# text "null" — a valid evidence code — and schemathesis cannot read the file part back
# to tell (the fields are still checked there by the positive cases and the other checks).
CONFIG = """\
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "409", "413", "415", "422"]

[[operations]]
include-path = "/api/dossiers/{dossier_id}/documents"
include-method = "POST"
checks.negative_data_rejection.enabled = false
"""

# The login cookie as the "cookie" security scheme's key, so that schemathesis knows it
# for the credential (ignored_auth sends each secured operation without it, and with a
# bad one); the value comes from the environment, not the file.
LOGIN_CONFIG = """
[auth.openapi.cookie]
api_key = "${HOIDONG_SCHEMATHESIS_COOKIE}"
"""


COMMAND = (
    f"HOIDONG_WRITE_RESULTS=1 HOIDONG_SCHEMATHESIS_EXAMPLES={EXAMPLES} "
    f"HOIDONG_SCHEMATHESIS_SEED={SEED} "
    ".venv/bin/pytest tests/test_schemathesis.py -p no:cacheprovider"
)


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Running]:
    settings = make_settings(tmp_path, transcribe_on_end=False, run_worker=False)
    async for r in start_app(settings):
        yield r


def _prepare(workdir: Path, config: str) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "schemathesis.toml").write_text(config)


def _report(path: Path, output: str) -> dict[str, Any]:
    assert path.exists(), output[-4000:]
    result: dict[str, Any] = json.loads(path.read_text())
    result["output"] = output
    return result


def _write_results(figures: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=1) + "\n")


async def _schemathesis(live: Running, workdir: Path, name: str, *extra: str,
                        cookie: str = "", headers: dict[str, str] | None = None
                        ) -> dict[str, Any]:
    """One ``schemathesis run`` against the live server: its JSON report, with its
    output (shown when a check failed)."""
    _prepare(workdir, CONFIG + (LOGIN_CONFIG if cookie else ""))
    report = workdir / f"{name}.json"
    args = [
        "run", f"{live.base_url}/api/openapi.json",
        "--checks", ",".join(CHECKS),
        "--max-examples", str(EXAMPLES), "--seed", str(SEED),
        "--workers", "1", "--request-timeout", "60", "--max-failures", "50",
        "--report", "json", "--report-json-path", str(report),
        "--no-color", "--output-truncate", "true", "--warnings", "off", *extra,
    ]
    for key, value in (headers or {}).items():
        args += ["-H", f"{key}: {value}"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", *args, cwd=workdir,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "HOIDONG_SCHEMATHESIS_COOKIE": cookie},
    )
    out, _ = await proc.communicate()
    return _report(report, out.decode(errors="replace"))


def _failures_section(text: str) -> str:
    start = text.find("FAILURES")
    end = text.find("SUMMARY", start)
    return text[start:end if end > 0 else None][:20000] if start >= 0 else text[-6000:]


async def test_schemathesis_finds_no_failure(live: Running, tmp_path: Path) -> None:
    try:
        import schemathesis
    except ImportError:
        need(False, "schemathesis (pip install -e '.[dev]')")
    resp = await live.client.post("/api/login", json={
        "username": live.settings.admin_username, "password": ADMIN_PASSWORD})
    assert resp.status == 200, await resp.text()
    cookie = resp.cookies[COOKIE_NAME].value
    csrf = {CSRF_HEADER: (await resp.json())["csrf_token"]}
    runs = {
        "admin": await _schemathesis(live, tmp_path / "admin", "admin",
                                     "--exclude-path", "/api/logout", cookie=cookie,
                                     headers=csrf),
        "anonymous": await _schemathesis(live, tmp_path / "anonymous", "anonymous"),
    }
    logged_in = {"Cookie": f"{COOKIE_NAME}={cookie}"}
    me = await live.client.get("/api/me", headers=logged_in)
    assert me.status == 200, "the admin run should have stayed logged in"
    made = await (await live.client.get("/api/dossiers", headers=logged_in)).json()
    assert made, "the admin run should have got past the login (its dossiers)"

    documented = await (await live.client.get("/api/openapi.json")).json()
    operations = sum(len(ops) for ops in documented["paths"].values())
    figures = {
        "operations": operations,
        "cases": sum(r["test_cases"]["generated"] for r in runs.values()),
        "failures": sum(r["test_cases"]["unique_failures"] for r in runs.values()),
        "command": COMMAND,
        "schemathesis": schemathesis.__version__,
        "examples": EXAMPLES,
        "seed": SEED,
        "checks": list(CHECKS),
        "runs": {name: {"tested": r["operations"]["tested"],
                        "cases": r["test_cases"]["generated"],
                        "failures": r["test_cases"]["unique_failures"],
                        "seconds": round(r["running_time"], 1)} for name, r in runs.items()},
    }
    if WRITE_RESULTS:
        _write_results(figures)

    for name, r in runs.items():
        left_out = 1 if name == "admin" else 0  # POST /api/logout
        assert r["operations"]["tested"] == operations - left_out, (name, r["operations"])
        assert not r["errors"], (name, r["errors"], r["output"][-4000:])
        assert r["test_cases"]["unique_failures"] == 0, (
            f"{name}: {r['failures']}\n{_failures_section(r['output'])}")
        assert r["stop_reason"] == "completed", (name, r["stop_reason"])


# -- what it found, replayed (each failed before its fix; fast, whatever the seed) -------


async def _call(live: Running, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    resp = await live.client.request(method, path, headers={**live.auth(), **kw.pop(
        "headers", {})}, **kw)
    text = await resp.text()
    try:
        return resp.status, json.loads(text)
    except ValueError:
        return resp.status, text


def _refused(status: int, body: Any, code: str) -> None:
    assert status == 400, (status, body)
    assert body["error"]["code"] == code, body
    assert set(body["error"]["message"]) == {"vi", "en"}, body


async def test_found_a_title_with_line_breaks_is_packaged(live: Running) -> None:
    """bag-info.txt took the line break for the end of a tag: 500 on packaging."""
    d = await live.api("POST", "/api/dossiers", {
        "title": "Hồ sơ\n° — kiểm định\r\nvòng 2", "institution": "Trường\x1cA",
        "phase": "evaluation"}, 201)
    s = await live.api("POST", f"/api/dossiers/{d['id']}/sessions",
                       {"kind": "interview", "title": "Phỏng vấn\nsinh viên"}, 201)
    await live.api("POST", f"/api/sessions/{s['id']}/start")
    await live.api("POST", f"/api/sessions/{s['id']}/end")
    await live.api("POST", f"/api/sessions/{s['id']}/packages", None, 201)
    await live.api("POST", f"/api/dossiers/{d['id']}/packages", None, 201)


async def test_found_a_malformed_upload_part_is_a_400(live: Running) -> None:
    """aiohttp's multipart reader raised InvalidHeader on a control character in a part's
    name: 500."""
    d = await live.api("POST", "/api/dossiers", {"title": "Hồ sơ", "phase": "evaluation"}, 201)
    body = (b'--b\r\nContent-Disposition: form-data; name="\x11x"\r\n\r\nnull\r\n'
            b'--b\r\nContent-Disposition: form-data; name="code"\r\n\r\nH1.01\r\n--b--\r\n')
    status, out = await _call(live, "POST", f"/api/dossiers/{d['id']}/documents", data=body,
                              headers={"Content-Type": "multipart/form-data; boundary=b"})
    _refused(status, out, "document.bad_upload")


async def test_found_search_parameters(live: Running) -> None:
    """A NUL in ``q`` broke SQLite's full-text MATCH, a date without an offset the UTC
    column: both 500."""
    status, out = await _call(live, "GET", "/api/search", params={"q": "kiểm\x00định"})
    _refused(status, out, "http.bad_request")
    status, out = await _call(live, "GET", "/api/search",
                              params={"q": "kiểm định", "since": "2026-01-01",
                                      "until": "2027-01-01T00:00"})
    assert (status, out) == (200, []), out


async def test_found_types_are_strict(live: Running) -> None:
    """0 passed for false, 1 for true, "10" for 10, and a time without its offset was
    taken (then failed at the database: 500); the schema says otherwise."""
    d = await live.api("POST", "/api/dossiers", {"title": "Hồ sơ", "phase": "evaluation"}, 201)
    sessions = f"/api/dossiers/{d['id']}/sessions"
    for body, field in (
        ({"policy": {"quorum_needs_chair": 0}}, "policy.quorum_needs_chair"),
        ({"policy": {"camera_grace_s": "10"}}, "policy.camera_grace_s"),
        ({"scheduled_at": "2030-01-02T03:04:05"}, "scheduled_at"),
        ({"scheduled_at": 1893553445}, "scheduled_at"),
    ):
        status, out = await _call(live, "POST", sessions,
                                  json={"kind": "interview", "title": "x", **body})
        _refused(status, out, "http.invalid_field")
        assert out["error"]["message"]["en"].count(field) == 1, out
    status, out = await _call(live, "PUT", f"/api/dossiers/{d['id']}/legal-hold",
                              json={"hold": 0, "reason": "thử"})
    _refused(status, out, "http.invalid_field")
    status, out = await _call(live, "POST", "/api/join/consent",
                              json={"token": "x", "accepted": 1})
    _refused(status, out, "http.invalid_field")
    # What json.loads lets through and pydantic's JSON does not: a lone surrogate.
    status, out = await _call(live, "POST", "/api/dossiers", data=b'{"title": "\\ud800", '
                              b'"phase": "evaluation"}',
                              headers={"Content-Type": "application/json"})
    _refused(status, out, "http.bad_json")
    # And what the staff pages send still passes.
    await live.api("POST", sessions, {"kind": "interview", "title": "x",
                                      "scheduled_at": "2030-01-02T03:04:05.000Z",
                                      "policy": {"camera_to_lobby": False,
                                                 "camera_grace_s": 10}}, 201)
