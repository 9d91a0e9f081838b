"""The ``hoidong`` command, run as a real process against a temporary data directory."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from server.models import Base
from server.settings import markdown_table
from tests.conftest import make_settings, start_app

_SCRIPT = Path(sys.executable).with_name("hoidong")
HOIDONG = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "server.cli"]
PASSWORD = "longpassword1"


def run(*args: str, data_dir: Path, env: dict[str, str] | None = None,
        stdin: str = "") -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HOIDONG_")}
    environ["HOIDONG_DATA_DIR"] = str(data_dir)
    environ["HOIDONG_LOG_LEVEL"] = "WARNING"
    environ.update(env or {})
    return subprocess.run([*HOIDONG, *args], env=environ, capture_output=True, text=True,
                          input=stdin, timeout=120, cwd=data_dir.parent)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def tables(db_file: Path) -> set[str]:
    with sqlite3.connect(db_file) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_help_lists_the_commands(data_dir: Path) -> None:
    out = ok(run("--help", data_dir=data_dir))
    for command in ("serve", "migrate", "user", "token", "settings"):
        assert command in out, command
    assert "create" in ok(run("user", "--help", data_dir=data_dir))
    assert "create" in ok(run("token", "--help", data_dir=data_dir))


def test_no_command_is_a_usage_error(data_dir: Path) -> None:
    result = run(data_dir=data_dir)
    assert result.returncode == 2
    assert "usage: hoidong" in result.stderr


def test_migrate_creates_the_sqlite_database(data_dir: Path) -> None:
    assert not data_dir.exists()
    out = ok(run("migrate", data_dir=data_dir))
    assert "up to date" in out
    db_file = data_dir / "hoidong.sqlite3"
    assert db_file.is_file()
    assert tables(db_file) >= set(Base.metadata.tables) | {"alembic_version"}
    # Again: nothing to do, nothing lost.
    ok(run("migrate", data_dir=data_dir))
    assert tables(db_file) >= set(Base.metadata.tables)


def test_data_dir_option_wins_over_the_environment(data_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    ok(run("migrate", "--data-dir", str(other), data_dir=data_dir))
    assert (other / "hoidong.sqlite3").is_file()
    assert not data_dir.exists()


async def test_user_and_token_authenticate_against_the_app(data_dir: Path, tmp_path: Path) -> None:
    ok(run("migrate", data_dir=data_dir))
    # The app only makes its first admin in an empty database: make one here.
    ok(run("user", "create", "--username", "admin", "--role", "admin", "--password",
           "test-admin-password", data_dir=data_dir))
    out = ok(run("user", "create", "--username", "sec1", "--role", "secretary",
                 "--password", PASSWORD, "--display-name", "Thư ký 1", data_dir=data_dir))
    assert "secretary" in out and "sec1" in out
    token = ok(run("token", "create", "--user", "sec1", "--name", "script",
                   data_dir=data_dir)).strip()
    assert token.startswith("hd_") and len(token) > 20 and "\n" not in token
    second = ok(run("token", "create", "--user", "sec1", data_dir=data_dir)).strip()
    assert second.startswith("hd_") and second != token

    async with contextlib.aclosing(start_app(make_settings(tmp_path, data_dir=data_dir))) as app:
        running = await anext(app)
        for bearer in (token, second):
            resp = await running.client.get(
                "/api/me", headers={"Authorization": f"Bearer {bearer}"})
            body = await resp.json()
            assert resp.status == 200, body
            assert body["user"]["username"] == "sec1"
            assert body["user"]["role"] == "secretary"
            assert body["user"]["display_name"] == "Thư ký 1"
        resp = await running.client.get(
            "/api/me", headers={"Authorization": f"Bearer {token[:-2]}xx"})
        assert resp.status == 401
        # The password works for a browser login too.
        resp = await running.client.post(
            "/api/login", json={"username": "sec1", "password": PASSWORD})
        assert resp.status == 200, await resp.text()


def test_duplicate_user_exits_1(data_dir: Path) -> None:
    ok(run("user", "create", "--username", "sec1", "--role", "secretary",
           "--password", PASSWORD, data_dir=data_dir))
    result = run("user", "create", "--username", "sec1", "--role", "chair",
                 "--password", PASSWORD + "x", data_dir=data_dir)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "sec1" in result.stderr and "exists" in result.stderr
    assert "Traceback" not in result.stderr


def test_token_for_unknown_user_exits_1(data_dir: Path) -> None:
    result = run("token", "create", "--user", "nobody", data_dir=data_dir)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "nobody" in result.stderr
    assert result.stdout == ""


def test_short_password_exits_2_and_makes_no_user(data_dir: Path) -> None:
    result = run("user", "create", "--username", "shorty", "--role", "reviewer",
                 "--password", "short", data_dir=data_dir)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "8 characters" in result.stderr
    assert run("token", "create", "--user", "shorty", data_dir=data_dir).returncode == 1


def test_generated_password(data_dir: Path) -> None:
    out = ok(run("user", "create", "--username", "arch", "--role", "archivist",
                 "--generate-password", data_dir=data_dir))
    line = next(x for x in out.splitlines() if x.startswith("password: "))
    assert len(line.removeprefix("password: ")) >= 12


def test_unknown_role_is_a_usage_error(data_dir: Path) -> None:
    result = run("user", "create", "--username", "x", "--role", "superuser",
                 "--password", PASSWORD, data_dir=data_dir)
    assert result.returncode == 2
    assert "--role" in result.stderr


@pytest.mark.parametrize(("var", "value"), [
    ("HOIDONG_PORT", "abc"), ("HOIDONG_COOKIE_SECURE", "maybe"), ("HOIDONG_UI_LANGUAGE", "fr"),
])
def test_bad_setting_in_environment_exits_2_naming_it(
    data_dir: Path, var: str, value: str,
) -> None:
    result = run("migrate", data_dir=data_dir, env={var: value})
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert var in result.stderr
    assert "Traceback" not in result.stderr
    assert not (data_dir / "hoidong.sqlite3").exists()


def test_settings_markdown_is_the_readme_table(data_dir: Path) -> None:
    assert ok(run("settings", "--markdown", data_dir=data_dir)) == markdown_table()


def test_settings_lists_every_env_var(data_dir: Path) -> None:
    out = ok(run("settings", data_dir=data_dir))
    for line in markdown_table().splitlines()[2:]:
        env = line.split("|")[2].strip().strip("`")
        assert env in out, env


@pytest.mark.slow
def test_transcribe_one_file(tmp_path: Path, espeak: str) -> None:
    """``hoidong transcribe FILE``: the text on standard output, SubRip and JSON on
    request; a bad language code or a file that is not audio is a clear error."""
    from tests.test_e2e_browser import make_speech

    wav = make_speech(espeak, tmp_path / "speech.wav")
    env = {"HOIDONG_WHISPER_MODEL": "tiny.en"}
    text = ok(run("transcribe", str(wav), "--language", "en", data_dir=tmp_path, env=env))
    assert "council" in text.lower(), text
    srt = ok(run("transcribe", str(wav), "--language", "en", "--format", "srt",
                 "--speaker", "Thư ký", data_dir=tmp_path, env=env))
    assert srt.startswith("1\n00:00:0") and " --> " in srt and "Thư ký: " in srt, srt
    document = json.loads(ok(run("transcribe", str(wav), "--language", "en", "--format",
                                 "json", data_dir=tmp_path, env=env)))
    assert document["segments"] and document["segments"][0]["words"]
    bad = run("transcribe", str(wav), "--language", "vietnamese", data_dir=tmp_path, env=env)
    assert bad.returncode == 2 and "language" in bad.stderr
    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("biên bản")
    bad = run("transcribe", str(not_audio), data_dir=tmp_path, env=env)
    assert bad.returncode == 1 and "cannot decode" in bad.stderr
