"""Settings: defaults, environment, explicit overrides, bad values, derived values,
``hoidong serve --help`` and the README's settings table."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from server.cli import build_parser, main, settings_from
from server.settings import ENV_PREFIX, Settings, SettingsError, describe, markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


# -- defaults and precedence ------------------------------------------------------------

def test_defaults_without_environment() -> None:
    s = Settings.load(environ={})
    assert s == Settings()
    assert s.data_dir == Path("data")
    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert s.database_url == "" and s.secret_key == "" and s.public_url == ""
    assert s.cookie_secure is False
    assert s.transcribe_on_end is True
    assert s.ui_language == "vi" and s.default_language == "vi"
    assert s.storage_backend == "local"
    assert s.whisper_model == "base" and s.whisper_compute_type == "int8"
    assert s.join_link_hours == 168 and s.login_session_hours == 12


def test_load_ignores_the_process_environment_when_given_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOIDONG_PORT", "1234")
    assert Settings.load(environ={}).port == 8080
    assert Settings.load().port == 1234  # default: os.environ


def test_environment_overrides_defaults() -> None:
    s = Settings.load(environ={
        "HOIDONG_PORT": " 9000 ",
        "HOIDONG_HOST": "0.0.0.0",
        "HOIDONG_DATA_DIR": "/srv/hoidong",
        "HOIDONG_COOKIE_SECURE": "yes",
        "HOIDONG_TRANSCRIBE_ON_END": "off",
        "HOIDONG_S3_SECURE": "1",
        "HOIDONG_UI_LANGUAGE": "en",
        "HOIDONG_STORAGE_BACKEND": "minio",
        "HOIDONG_WHISPER_CPU_THREADS": "3",
        "HOIDONG_LOG_LEVEL": "DEBUG",
        "HOIDONG_SECRET_KEY": "s3cret",
        "HOIDONG_SEGMENT_S": " 2.5 ",
        "HOIDONG_CAMERA_SAMPLE_S": "1",
        "UNRELATED": "ignored",
    })
    assert s.port == 9000
    assert s.host == "0.0.0.0"
    assert s.data_dir == Path("/srv/hoidong") and isinstance(s.data_dir, Path)
    assert s.cookie_secure is True
    assert s.transcribe_on_end is False
    assert s.s3_secure is True
    assert s.ui_language == "en"
    assert s.storage_backend == "minio"
    assert s.whisper_cpu_threads == 3
    assert s.log_level == "DEBUG"
    assert s.secret_key == "s3cret"
    assert s.segment_s == 2.5 and isinstance(s.camera_sample_s, float)


@pytest.mark.parametrize(("text", "expected"), [
    ("1", True), ("true", True), ("TRUE", True), ("yes", True), ("on", True),
    ("0", False), ("false", False), ("no", False), ("off", False), ("", False),
])
def test_boolean_spellings(text: str, expected: bool) -> None:
    assert Settings.load(environ={"HOIDONG_COOKIE_SECURE": text}).cookie_secure is expected


def test_explicit_overrides_win_over_environment() -> None:
    env = {"HOIDONG_PORT": "9000", "HOIDONG_COOKIE_SECURE": "true", "HOIDONG_HOST": "10.0.0.1"}
    s = Settings.load(environ=env, port=9001, cookie_secure=False, host=None)
    assert s.port == 9001
    assert s.cookie_secure is False
    assert s.host == "10.0.0.1"  # None means "not given": the environment applies


def test_overrides_are_coerced_like_environment_values() -> None:
    s = Settings.load(environ={}, port="7000", data_dir="/tmp/x", s3_secure="true")
    assert s.port == 7000
    assert s.data_dir == Path("/tmp/x")
    assert s.s3_secure is True


def test_command_line_option_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOIDONG_PORT", "9000")
    monkeypatch.setenv("HOIDONG_COOKIE_SECURE", "true")
    monkeypatch.setenv("HOIDONG_HOST", "10.0.0.1")
    args = build_parser().parse_args(["serve", "--port", "9002", "--no-cookie-secure"])
    s = settings_from(args)
    assert s.port == 9002
    assert s.cookie_secure is False
    assert s.host == "10.0.0.1"


# -- bad values -------------------------------------------------------------------------

@pytest.mark.parametrize(("var", "value", "words"), [
    ("HOIDONG_PORT", "abc", "whole number"),
    ("HOIDONG_PORT", "", "whole number"),
    ("HOIDONG_PORT", "80.5", "whole number"),
    ("HOIDONG_PORT", "-1", "negative"),
    ("HOIDONG_JOIN_LINK_HOURS", "-5", "negative"),
    ("HOIDONG_WHISPER_CPU_THREADS", "many", "whole number"),
    ("HOIDONG_COOKIE_SECURE", "maybe", "true/false"),
    ("HOIDONG_TRANSCRIBE_ON_END", "2", "true/false"),
    ("HOIDONG_UI_LANGUAGE", "fr", "one of"),
    ("HOIDONG_STORAGE_BACKEND", "s3", "one of"),
    ("HOIDONG_WHISPER_COMPUTE_TYPE", "float16", "one of"),
    ("HOIDONG_LOG_LEVEL", "debug", "one of"),
    ("HOIDONG_SEGMENT_S", "ten", "a number"),
    ("HOIDONG_SEGMENT_S", "nan", "finite"),
    ("HOIDONG_CAMERA_SAMPLE_S", "-3", "negative"),
    ("HOIDONG_OTHER_LANGUAGES", "english", "ISO 639-1"),
    ("HOIDONG_OTHER_LANGUAGES", "en;fr", "ISO 639-1"),
    ("HOIDONG_WHISPER_FALLBACK_TEMPERATURES", "1.0,0.5", "rising"),
    ("HOIDONG_WHISPER_FALLBACK_TEMPERATURES", "0,0.5", "rising"),
    ("HOIDONG_WHISPER_FALLBACK_TEMPERATURES", "0.5,2", "rising"),
    ("HOIDONG_WHISPER_FALLBACK_TEMPERATURES", "", "rising"),
    ("HOIDONG_WHISPER_FALLBACK_TEMPERATURES", "hot", "rising"),
    ("HOIDONG_WHISPER_PARALLEL_TRACKS", "0", "at least 1"),
])
def test_bad_environment_value_names_the_variable(var: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.load(environ={var: value})
    message = str(info.value)
    assert message.startswith(var + ":"), message
    assert words in message


def test_bad_override_names_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"^HOIDONG_PORT: .*negative"):
        Settings.load(environ={}, port=-3)
    with pytest.raises(SettingsError, match=r"^HOIDONG_PORT: .*whole number"):
        Settings.load(environ={}, port=True)  # a bool is not a port
    with pytest.raises(SettingsError, match=r"^HOIDONG_UI_LANGUAGE: .*vi, en"):
        Settings.load(environ={}, ui_language="de")


def test_unknown_override_is_refused() -> None:
    with pytest.raises(SettingsError, match="unknown settings: no_such_setting"):
        Settings.load(environ={}, no_such_setting="1")
    with pytest.raises(SettingsError, match="unknown settings"):
        Settings.load(environ={}, prot=8080)


def test_settings_are_immutable() -> None:
    s = Settings.load(environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]


# -- derived values ---------------------------------------------------------------------

def test_resolved_database_url_defaults_to_sqlite_under_data_dir(tmp_path: Path) -> None:
    s = Settings.load(environ={"HOIDONG_DATA_DIR": str(tmp_path / "d")})
    expected = f"sqlite+aiosqlite:///{(tmp_path / 'd' / 'hoidong.sqlite3').resolve()}"
    assert s.resolved_database_url == expected
    relative = Settings.load(environ={})
    assert relative.resolved_database_url == (
        f"sqlite+aiosqlite:///{Path('data', 'hoidong.sqlite3').resolve()}"
    )
    assert Path(relative.resolved_database_url.split("///", 1)[1]).is_absolute()
    pg = "postgresql+asyncpg://u@db/hoidong"
    assert Settings.load(environ={"HOIDONG_DATABASE_URL": pg}).resolved_database_url == pg


def test_data_dir_children(tmp_path: Path) -> None:
    s = Settings.load(environ={}, data_dir=tmp_path)
    assert s.storage_dir == tmp_path / "objects"
    assert s.spool_dir == tmp_path / "spool"
    assert s.model_cache_dir == tmp_path / "models"


@pytest.mark.parametrize(("host", "port", "expected"), [
    ("0.0.0.0", 8080, "http://127.0.0.1:8080"),
    ("::", 9000, "http://127.0.0.1:9000"),
    ("", 81, "http://127.0.0.1:81"),
    ("hoidong.example.edu.vn", 8443, "http://hoidong.example.edu.vn:8443"),
    ("127.0.0.1", 8080, "http://127.0.0.1:8080"),
])
def test_resolved_public_url_from_host_and_port(host: str, port: int, expected: str) -> None:
    s = Settings.load(environ={}, host=host, port=port)
    assert s.resolved_public_url == expected


def test_resolved_public_url_given_loses_trailing_slash() -> None:
    s = Settings.load(environ={"HOIDONG_PUBLIC_URL": "https://hd.example.vn/"}, host="0.0.0.0")
    assert s.resolved_public_url == "https://hd.example.vn"


def test_resolved_cpu_threads() -> None:
    assert Settings.load(environ={}).resolved_cpu_threads == (os.cpu_count() or 1)
    assert Settings.load(environ={"HOIDONG_WHISPER_CPU_THREADS": "0"}).resolved_cpu_threads == (
        os.cpu_count() or 1
    )
    assert Settings.load(environ={}, whisper_cpu_threads=3).resolved_cpu_threads == 3


# -- help and README ----------------------------------------------------------------------

def test_describe_covers_every_setting() -> None:
    infos = describe()
    assert [i.name for i in infos] == [f.name for f in dataclasses.fields(Settings)]
    for info in infos:
        assert info.env == env_name(info.name)
        assert info.help.strip(), info.name


def test_serve_help_lists_every_flag_and_env_var(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as info:
        main(["serve", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    # argparse may wrap lines; compare on whitespace-collapsed text.
    flat = re.sub(r"\s+", " ", out)
    for s in describe():
        flag = "--" + s.name.replace("_", "-")
        assert re.search(re.escape(flag) + r"\b", out), flag
        assert f"env {s.env};" in flat, s.env
        assert f"default: {s.default or '(empty)'}]" in flat, (s.name, s.default)
        if s.type == "bool":
            assert "--no-" + s.name.replace("_", "-") in out, s.name


def test_command_line_refuses_a_choice_not_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--ui-language", "fr"])
    assert info.value.code == 2
    assert "--ui-language" in capsys.readouterr().err


def test_markdown_table_has_a_row_per_setting() -> None:
    table = markdown_table()
    rows = table.strip().splitlines()
    assert rows[0].startswith("| setting |")
    assert len(rows) == 2 + len(describe())
    for s, row in zip(describe(), rows[2:], strict=True):
        assert row.startswith(f"| `{s.name}` | `{s.env}` |"), row


def test_readme_settings_table_is_current() -> None:
    """README.md carries markdown_table() verbatim between the settings markers."""
    assert README.is_file(), "README.md is missing"
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text, f"README.md lacks {START} … {END}"
    between = text.split(START, 1)[1].split(END, 1)[0]
    assert between.strip("\n") == markdown_table().strip("\n"), (
        "the README's settings table is out of date; paste `hoidong settings --markdown` "
        f"between {START} and {END}"
    )


def test_language_and_temperature_lists() -> None:
    s = Settings.load(environ={"HOIDONG_OTHER_LANGUAGES": " EN, fr,en ,",
                               "HOIDONG_WHISPER_FALLBACK_TEMPERATURES": "0.2, 0.6,1"})
    assert s.other_language_codes == ("en", "fr")
    assert s.fallback_temperatures == (0.2, 0.6, 1.0)
    assert Settings.load(environ={"HOIDONG_OTHER_LANGUAGES": ""}).other_language_codes == ()
    assert Settings().fallback_temperatures == (0.5, 1.0)
