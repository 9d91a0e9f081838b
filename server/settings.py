"""Every hoidong setting, declared once: name, type, default and help text.

A setting is read, in order of precedence, from an explicit override (command-line
option or test code), from the environment variable ``HOIDONG_<NAME>`` and from its
default. ``hoidong serve --help`` and the README's settings table are generated from
the declarations below; ``tests/test_settings.py`` keeps the README honest.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage import ObjectStore

ENV_PREFIX = "HOIDONG_"
_LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}")


class SettingsError(ValueError):
    """A setting's value could not be parsed; the message names the setting."""


def _setting(default: Any, help: str, choices: tuple[str, ...] = (),
             check: Callable[[Any], object] | None = None) -> Any:
    """One setting; ``check`` raises ValueError (its message says what was expected)
    for a value of the right type that is still wrong."""
    return field(default=default, metadata={"help": help, "choices": choices,
                                            "check": check})


def _temperatures(text: str) -> tuple[float, ...]:
    """``"0.5,1.0"`` as ``(0.5, 1.0)``; ValueError unless each is in (0, 1] and rising."""
    expected = "expected rising numbers above 0 and at most 1 such as '0.5,1.0'"
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(expected) from None
    if not values or any(not 0 < v <= 1 for v in values) or list(values) != sorted(set(values)):
        raise ValueError(expected)
    return values


def _language_codes(text: str) -> tuple[str, ...]:
    """``" EN, fr,en"`` as ``("en", "fr")``: in order, no blanks or repeats; ValueError for
    anything that is not a two- or three-letter code."""
    codes = [c.strip().lower() for c in text.split(",") if c.strip()]
    if not all(_LANGUAGE_CODE.fullmatch(c) for c in codes):
        raise ValueError("expected ISO 639-1 codes such as 'en,fr'")
    return tuple(dict.fromkeys(codes))


def _at_least_one(n: int) -> int:
    if n < 1:
        raise ValueError("must be at least 1")
    return n


def _not_negative(n: float) -> float:
    if n < 0:
        raise ValueError("must be 0 or more")
    return n


def _mmap_threshold_kb(n: int) -> int:
    if not 0 <= n <= 32 * 1024:  # glibc refuses more than half its 64 MiB heap size
        raise ValueError("must be 0 to 32768 KiB")
    return n


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one hoidong process (immutable once built)."""

    data_dir: Path = _setting(
        Path("./data"),
        "Directory for the SQLite database, local object storage, spool and model cache.",
    )
    host: str = _setting("127.0.0.1", "Address `hoidong serve` listens on.")
    port: int = _setting(8080, "TCP port `hoidong serve` listens on.")
    public_url: str = _setting(
        "",
        "Base URL people reach the server at, used in join links (empty: http://HOST:PORT).",
    )
    database_url: str = _setting(
        "",
        "SQLAlchemy URL, e.g. postgresql+asyncpg://user@host/db "
        "(empty: SQLite file DATA_DIR/hoidong.sqlite3).",
    )
    secret_key: str = _setting(
        "",
        "Key signing join links (HS256). Empty: generated once and kept in DATA_DIR/secret_key.",
    )
    admin_username: str = _setting(
        "admin", "Name of the administrator account made on first start."
    )
    admin_password: str = _setting(
        "",
        "Password for that account when it is first made (empty: one is generated and printed).",
    )
    join_link_hours: int = _setting(
        168, "How long a participant's join link stays valid, in hours after it is issued."
    )
    cookie_secure: bool = _setting(
        False, "Mark login cookies Secure (turn on whenever the server is reached over HTTPS)."
    )
    login_session_hours: int = _setting(12, "How long a staff login lasts, in hours.")
    max_participants: int = _setting(
        20,
        "Most people a meeting is prepared for: each browser offers one receive slot per "
        "kind (audio, video) for every other participant.",
    )
    stun_urls: str = _setting(
        "", "STUN servers for browsers, comma-separated (e.g. stun:turn.example.vn:3478)."
    )
    turn_urls: str = _setting(
        "",
        "TURN servers, comma-separated (e.g. turn:turn.example.vn:3478?transport=udp, "
        "turns:turn.example.vn:5349). Each join gets its own short-lived credentials.",
    )
    turn_secret: str = _setting(
        "", "Shared secret with coturn (use-auth-secret / static-auth-secret) for TURN credentials."
    )
    metrics_token: str = _setting(
        "", "Bearer token /metrics asks for (Authorization: Bearer …; constant-time check); "
        "empty: /metrics is open, so block it at the reverse proxy."
    )
    turn_ttl_s: int = _setting(
        86400, "How long a participant's TURN credentials stay valid, in seconds."
    )
    fast_forwarding: bool = _setting(
        True,
        "Send forwarded media straight from the forwarding call (RTP header, SRTP, UDP) "
        "instead of through aiortc's per-track sender tasks; off only to compare.",
    )
    native_send: bool = _setting(
        True,
        "Protect and send forwarded packets in batches in C (compiled with the system's C "
        "compiler on first start, cached under ~/.cache/hoidong); without a compiler, or "
        "off, the Python path sends the same packets with more CPU.",
    )
    send_workers: int = _setting(
        1,
        "Processes that encrypt and send forwarded media beside the server process, so "
        "forwarding is not limited to the event loop's one core (0: the server sends); "
        "used only where the native send path is off or cannot be built.",
    )
    send_worker_fanout: int = _setting(
        16,
        "Subscribers a forwarded frame must have before a send worker takes it; smaller "
        "fan-outs are sent by the server itself, which costs less CPU up to ~15 people "
        "(measured: docs/benchmarks.md) but is capped at one core.",
    )
    malloc_trim_s: float = _setting(
        60.0,
        "How often, in seconds, the server gives memory it has freed back to the operating "
        "system (glibc's malloc_trim, in a thread); without it the resident size stays at "
        "the high-water mark of the busiest minute. 0: never; ignored off glibc.",
        check=_not_negative,
    )
    malloc_mmap_threshold_kb: int = _setting(
        256,
        "Blocks at least this large, in KiB, get their own mapping, returned to the "
        "operating system as soon as they are freed (glibc's M_MMAP_THRESHOLD, fixed "
        "instead of rising to 32 MiB). 0: glibc's default; ignored off glibc.",
        check=_mmap_threshold_kb,
    )
    segment_s: float = _setting(
        10.0,
        "Length of a recording segment, in seconds: each track is written in segments, each "
        "playable on its own, hashed and uploaded as it closes (a crash loses at most one).",
    )
    storage_retry_max_s: float = _setting(
        30.0,
        "Longest wait, in seconds, between attempts to upload a recording segment while the "
        "object store fails (from 1 s, doubling); the segment waits in the spool meanwhile.",
    )
    camera_sample_s: float = _setting(
        3.0,
        "Seconds between camera checks: the server asks each participant's camera for a "
        "key frame this often and looks at it (black, frozen); nothing else is decoded.",
    )
    camera_stale_s: float = _setting(
        2.0, "Seconds without any video frame after which a camera counts as off."
    )
    camera_frozen_s: float = _setting(
        20.0, "Seconds of an unchanging picture after which a camera counts as off (frozen)."
    )
    camera_face_check: bool = _setting(
        False,
        "Also count a camera as off when no face is seen in two samples in a row (OpenCV's "
        "bundled frontal-face Haar cascade; profiles and dark rooms can read as no face).",
    )
    presence_still_minutes: float = _setting(
        0.0,
        "Keep one small still (320x240 JPEG) of each participant's camera every this many "
        "minutes as proof of presence, stored and hashed with the session (0: never).",
    )
    signal_hellos_per_minute: int = _setting(
        300, "Signalling sockets one client address may open per minute (a burst of as "
        "many is allowed; a whole institution may sit behind one address, and pages "
        "reconnect by themselves); more are refused with signal.rate_limited.")
    signal_messages_per_minute: int = _setting(
        600, "Signalling messages one participant's link may send per minute (bursts of as "
        "many); more close that participant's socket with signal.rate_limited.")
    media_connect_timeout_s: float = _setting(
        30.0,
        "Seconds a participant's media (ICE and DTLS) may take to connect after the server's "
        "answer; a client that never connects is then told so and disconnected, and the "
        "leave is recorded with that reason (0: wait for ever).",
    )
    reconnect_grace_s: int = _setting(
        30,
        "Seconds a participant whose connection was lost may take to come back; the record "
        "then shows a gap instead of a leave and a join (0: every loss is a leave).",
    )
    interview_margin_minutes: int = _setting(
        15,
        "An interviewee's link works from this many minutes before the interview's scheduled "
        "start until this many after its scheduled end.",
    )
    interview_default_minutes: int = _setting(
        60, "An interview's length when it is scheduled without an end time, in minutes."
    )
    ui_language: str = _setting("vi", "Default language of the interface.", ("vi", "en"))
    storage_backend: str = _setting(
        "local", "Where recordings and transcripts are stored.", ("local", "minio")
    )
    s3_endpoint: str = _setting("", "MinIO/S3 endpoint as host:port (storage_backend=minio).")
    s3_access_key: str = _setting("", "MinIO/S3 access key.")
    s3_secret_key: str = _setting("", "MinIO/S3 secret key.")
    s3_bucket: str = _setting("hoidong", "MinIO/S3 bucket (created when missing).")
    s3_secure: bool = _setting(False, "Use HTTPS to reach MinIO/S3.")
    s3_region: str = _setting("", "MinIO/S3 region (empty: the server's default).")
    s3_object_lock: bool = _setting(
        True,
        "Create the MinIO/S3 bucket with Object Lock (and so versioning) and give every "
        "object compliance-mode retention: the storage server itself refuses to delete "
        "or overwrite it before its date. Only a new bucket can get it.",
    )
    tls_cert: str = _setting(
        "",
        "TLS certificate chain (PEM file) to serve HTTPS directly; browsers give the "
        "camera only to HTTPS pages (or localhost). Empty: plain HTTP, e.g. behind a "
        "reverse proxy that does TLS (docs/operations.md).",
    )
    tls_key: str = _setting("", "The TLS certificate's private key (PEM file).")
    tsa_url: str = _setting(
        "",
        "An RFC 3161 time-stamping authority (URL): each archive package's Merkle root is "
        "stamped by it and the token kept in the package (empty: no time-stamps).",
    )
    tsa_timeout_s: float = _setting(
        10.0, "Seconds to wait for the time-stamping authority before a package is made "
        "without a stamp (the failure is recorded).",
    )
    document_max_mb: float = _setting(
        200.0,
        "Largest dossier document (minh chứng) an upload may carry, in MiB; a larger one is "
        "refused with 413 and nothing of it is kept.",
    )
    retention_years: int = _setting(
        10,
        "Years every stored evidence object is kept (retention from the time it is "
        "written; compliance mode on MinIO, enforced by hoidong on local storage).",
    )
    whisper_model: str = _setting(
        "base",
        "Whisper model: a bundled name (`base`, multilingual; `tiny.en`, English only), "
        "the path of any CTranslate2 Whisper folder (e.g. a converted PhoWhisper), or a "
        "faster-whisper model name (`small`, `large-v3`) downloaded once where there is "
        "internet and hash-checked after.",
    )
    whisper_compute_type: str = _setting(
        "int8",
        "CTranslate2 compute type for Whisper on the CPU.",
        ("int8", "int8_float32", "float32"),
    )
    whisper_cpu_threads: int = _setting(0, "Threads Whisper may use (0: the machine's cores).")
    whisper_parallel_tracks: int = _setting(
        2,
        "Participants' tracks a transcription works on at once, sharing Whisper's threads "
        "(each gets threads / this, at least one). Two tracks on one thread each keep two "
        "cores busier than one on two (measured: docs/benchmarks.md).",
        check=_at_least_one,
    )
    whisper_beam_size: int = _setting(5, "Beam size for Whisper decoding.")
    whisper_temperature_fallback: bool = _setting(
        True,
        "Decode a window again at rising temperatures when Whisper's result looks wrong "
        "(repetitive or improbable text). Off is several times faster on hard audio but "
        "keeps a window's first guess however poor it is.",
    )
    whisper_fallback_temperatures: str = _setting(
        "0.5,1.0",
        "The temperatures of those second decodes, rising, comma-separated, each above 0 "
        "and at most 1. Whisper's own ladder is 0.2,0.4,0.6,0.8,1.0: on hard audio every "
        "step is another full decode (measured: docs/benchmarks.md).",
        check=_temperatures,
    )
    whisper_batch_size: int = _setting(
        0,
        "Speech chunks Whisper decodes at once (faster-whisper's batched pipeline: a quarter "
        "faster, but one line per chunk of up to 30 s and weaker on poor audio). 0: one "
        "stream per track, window after window, a line per sentence.",
    )
    default_language: str = _setting(
        "vi", "Spoken language assumed for new sessions (ISO 639-1 code)."
    )
    other_languages: str = _setting(
        "en",
        "Languages a participant may speak instead of the session's (comma-separated ISO "
        "639-1 codes): a participant's track is transcribed in one of these when it is "
        "the language Whisper finds likeliest on the track's first 90 s of speech, and in "
        "the session's otherwise (a guess outside the list, such as Thai for accented "
        "Vietnamese, keeps the session's). Empty: every track in the session's language.",
        check=_language_codes,
    )
    job_queue: str = _setting(
        "sqlite",
        "Where transcription jobs wait for a worker: a SQLite file in DATA_DIR (no server "
        "needed) or Redis (workers on other machines).", ("sqlite", "redis"))
    redis_url: str = _setting("redis://127.0.0.1:6379/0",
                              "Redis for job_queue=redis (huey's Redis storage).")
    job_queue_name: str = _setting(
        "hoidong", "Name of the job queue: deployments sharing one Redis need different names "
        "(their workers would otherwise take each other's jobs).")
    run_worker: bool = _setting(
        True,
        "The server starts a transcription worker process of its own (off when `hoidong "
        "worker` processes run elsewhere).")
    job_retries: int = _setting(
        3, "Attempts a transcription job gets when the store or database fails for a while "
        "(waiting 5 s, doubling, between them).")
    incremental_transcription: bool = _setting(
        False,
        "Transcribe each audio segment as soon as it is stored, during the meeting, so the "
        "transcript is ready minutes after the end. Off by default: on a 2-core machine "
        "Whisper competes with the live meeting for the cores.")
    transcribe_on_end: bool = _setting(
        True, "Transcribe every participant's audio when a session ends."
    )
    log_level: str = _setting("INFO", "Logging level.", ("DEBUG", "INFO", "WARNING", "ERROR"))
    log_format: str = _setting(
        "text", "Log lines as plain text, or one JSON object per line (time, level, logger, "
        "message, and the session and participant ids where there are some).",
        ("text", "json"))

    # -- derived values -------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'hoidong.sqlite3').resolve()}"

    @property
    def resolved_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"{'https' if self.tls_cert else 'http'}://{host}:{self.port}"

    @property
    def fallback_temperatures(self) -> tuple[float, ...]:
        """``whisper_fallback_temperatures`` as numbers (checked when the settings load)."""
        return _temperatures(self.whisper_fallback_temperatures)

    @property
    def other_language_codes(self) -> tuple[str, ...]:
        """``other_languages`` as codes (checked when the settings load)."""
        return _language_codes(self.other_languages)

    @property
    def resolved_cpu_threads(self) -> int:
        return self.whisper_cpu_threads or (os.cpu_count() or 1)

    @property
    def threads_per_track(self) -> int:
        """Whisper threads for one track when ``whisper_parallel_tracks`` run at once."""
        return max(1, self.resolved_cpu_threads // self.whisper_parallel_tracks)

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def spool_dir(self) -> Path:
        """Where recordings are written while a session is live, before upload."""
        return self.data_dir / "spool"

    def open_store(self) -> ObjectStore:
        """The object store these settings describe (no I/O until first used)."""
        from storage import open_store

        return open_store(
            self.storage_backend, local_root=self.storage_dir, s3_endpoint=self.s3_endpoint,
            s3_access_key=self.s3_access_key, s3_secret_key=self.s3_secret_key,
            s3_bucket=self.s3_bucket, s3_secure=self.s3_secure,
            s3_region=self.s3_region or None, object_lock=self.s3_object_lock,
            retention_days=round(self.retention_years * 365.25))

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models"

    # -- construction ------------------------------------------------------------------

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``) and ``overrides``.

        Overrides whose value is ``None`` are ignored, so parsed command-line options
        can be passed straight through. Raises :class:`SettingsError` on a bad value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if overrides.get(f.name) is not None:
                raw: Any = overrides[f.name]
            elif ENV_PREFIX + f.name.upper() in env:
                raw = env[ENV_PREFIX + f.name.upper()]
            else:
                continue
            values[f.name] = _coerce(f, raw)
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
        return cls(**values)


def _coerce(f: dataclasses.Field[Any], raw: Any) -> Any:
    default: Any = f.default
    kind = type(default)
    name = ENV_PREFIX + f.name.upper()
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        value = raw
    elif kind is bool:
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            value = True
        elif text in ("0", "false", "no", "off", ""):
            value = False
        else:
            raise SettingsError(f"{name}: expected true/false, got {raw!r}")
    elif kind is int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise SettingsError(f"{name}: expected a whole number, got {raw!r}") from None
    elif kind is float:
        try:
            value = float(str(raw).strip())
        except ValueError:
            raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise SettingsError(f"{name}: expected a finite number, got {raw!r}")
    elif issubclass(kind, Path):
        value = Path(str(raw))
    else:
        value = str(raw)
    check = f.metadata.get("check")
    if check is not None:
        try:
            check(value)
        except ValueError as exc:
            raise SettingsError(f"{name}: {exc}, got {raw!r}") from None
    if kind in (int, float) and value < 0:
        raise SettingsError(f"{name}: must not be negative, got {value}")
    choices: tuple[str, ...] = f.metadata.get("choices", ())
    if choices and value not in choices:
        raise SettingsError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class SettingInfo:
    """One setting as shown to people: in ``--help`` and in the README table."""

    name: str
    env: str
    default: str
    help: str
    choices: tuple[str, ...]
    type: str


def describe() -> list[SettingInfo]:
    out = []
    for f in dataclasses.fields(Settings):
        default = f.default
        shown = ("true" if default else "false") if isinstance(default, bool) else str(default)
        out.append(
            SettingInfo(
                name=f.name,
                env=ENV_PREFIX + f.name.upper(),
                default=shown,
                help=f.metadata["help"],
                choices=f.metadata.get("choices", ()),
                type=type(default).__name__ if not isinstance(default, Path) else "path",
            )
        )
    return out


COMPOSE_VARIABLES = (
    ("POSTGRES_PASSWORD", "change-me-postgres", "Password of the PostgreSQL user hoidong."),
    ("MINIO_ROOT_USER", "hoidong", "MinIO's root user (also hoidong's S3 access key)."),
    ("MINIO_ROOT_PASSWORD", "change-me-minio-secret", "MinIO's root password (hoidong's S3 "
     "secret key; at least 8 characters)."),
    ("TURN_SECRET", "change-me-turn-secret", "The secret coturn and hoidong share for "
     "per-join TURN credentials (coturn's REST API)."),
    ("TURN_REALM", "hoidong.example.org", "coturn's realm."),
    ("TURN_EXTERNAL_IP", "203.0.113.10", "The public address coturn announces."),
    ("PUBLIC_HOST", "hoidong.example.org", "The host name people reach hoidong at."),
)


def env_example() -> str:
    """``.env.example``: the variables docker-compose.yml reads, then every setting with
    its default and help (kept current by tests/test_compose.py)."""
    lines = ["# docker-compose.yml reads this file as .env (copy it, then change every",
             "# change-me value). Generated by `hoidong settings --env`.", "",
             "# -- the services' own variables"]
    for name, value, help_text in COMPOSE_VARIABLES:
        lines += [f"# {help_text}", f"{name}={value}"]
    lines += ["", "# -- hoidong's settings (defaults shown; the compose file sets the ones "
              "that wire the services together)"]
    for s in describe():
        lines.append(f"# {s.help}" + (f" One of: {', '.join(s.choices)}." if s.choices else ""))
        lines.append(f"{s.env}={s.default}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The README's settings table (kept current by tests/test_settings.py)."""
    lines = ["| setting | environment | default | meaning |", "| --- | --- | --- | --- |"]
    for s in describe():
        default = f"`{s.default}`" if s.default else "(empty)"
        meaning = s.help.replace("|", "\\|")
        if s.choices:
            meaning += " One of: " + ", ".join(f"`{c}`" for c in s.choices) + "."
        lines.append(f"| `{s.name}` | `{s.env}` | {default} | {meaning} |")
    return "\n".join(lines) + "\n"
