"""The ``hoidong`` command: serve, migrate, user create, token create, settings.

``hoidong serve --help`` lists every setting with its environment variable and
default; options given on the command line win over the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from server.settings import Settings, SettingsError, describe, env_example, markdown_table


def _add_setting_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (each also read from its environment variable)")
    for info in describe():
        flag = "--" + info.name.replace("_", "-")
        help_text = f"{info.help} [env {info.env}; default: {info.default or '(empty)'}]"
        if info.type == "bool":
            group.add_argument(flag, dest=info.name, default=None,
                               action=argparse.BooleanOptionalAction, help=help_text)
        else:
            group.add_argument(flag, dest=info.name, default=None, metavar=info.name.upper(),
                               choices=list(info.choices) or None, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hoidong",
        description="Online meeting and interview evidence service for education quality "
                    "accreditation (KĐCLGD).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server (migrates the database first)")
    _add_setting_options(serve)

    migrate = sub.add_parser("migrate", help="bring the database schema up to date")
    _add_setting_options(migrate)

    user = sub.add_parser("user", help="manage staff accounts")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    create = user_sub.add_parser("create", help="create a staff account")
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True,
                        choices=["admin", "secretary", "archivist", "chair", "reviewer"])
    create.add_argument("--display-name", default="")
    create.add_argument("--password", default=None,
                        help="password (default: ask; with --generate-password, generate one)")
    create.add_argument("--generate-password", action="store_true")
    _add_setting_options(create)

    token = sub.add_parser("token", help="manage API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    tcreate = token_sub.add_parser("create", help="create a bearer token for a user (printed once)")
    tcreate.add_argument("--user", required=True, help="username")
    tcreate.add_argument("--name", default="", help="what the token is for")
    _add_setting_options(tcreate)

    tr = sub.add_parser("transcribe", help="transcribe one audio or video file (text to "
                        "standard output with --format txt)")
    tr.add_argument("file", type=Path, help="any file FFmpeg decodes (WebM, Ogg, WAV, MP4…)")
    tr.add_argument("--language", default=None,
                    help="spoken language, ISO 639-1, imposed (default: "
                         "HOIDONG_DEFAULT_LANGUAGE, or one of HOIDONG_OTHER_LANGUAGES when "
                         "Whisper hears that one)")
    tr.add_argument("--format", default="txt", choices=["txt", "vtt", "srt", "json"])
    tr.add_argument("--speaker", default=None, help="name to show (default: the file's name)")
    _add_setting_options(tr)

    worker = sub.add_parser("worker", help="run a transcription worker (takes jobs from the "
                            "queue until stopped)")
    _add_setting_options(worker)

    verify = sub.add_parser("verify", help="check an archive package offline (a bag "
                            "directory or zip): every hash, the audit chain, the Merkle root; "
                            "exit 0 if whole, 1 if not, 2 if it cannot be checked")
    verify.add_argument("package", type=Path, help="the package (.zip) or bag directory")
    verify.add_argument("--tsa-cert", type=Path, action="append", default=None,
                        help="a trusted time-stamping authority certificate (PEM); the "
                        "package's time-stamp must be signed by it or one it issued "
                        "(repeatable; without it the stamp's signature is still checked)")
    verify.add_argument("--lang", default="both", choices=["vi", "en", "both"],
                        help="language of the report (default: Vietnamese and English)")

    settings = sub.add_parser("settings", help="list every setting")
    settings.add_argument("--markdown", action="store_true", help="as the README's table")
    settings.add_argument("--env", action="store_true", help="as .env.example")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    names = {f.name for f in dataclasses.fields(Settings)}
    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if k in names}
    return Settings.load(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "settings":
        if args.markdown:
            sys.stdout.write(markdown_table())
        elif args.env:
            sys.stdout.write(env_example())
        else:
            for info in describe():
                print(f"{info.env:32} {info.default or '(empty)':24} {info.help}")
        return 0
    if args.command == "verify":
        return _verify_package(args.package, args.lang, args.tsa_cert)
    try:
        settings = settings_from(args)
    except SettingsError as exc:
        print(f"hoidong: {exc}", file=sys.stderr)
        return 2
    from server.logs import configure

    configure(settings.log_level, settings.log_format)
    if args.command == "serve":
        return _serve(settings)
    if args.command == "migrate":
        from server.database import migrate_sync

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        migrate_sync(settings.resolved_database_url)
        print("hoidong: database is up to date")
        return 0
    if args.command == "user":
        return asyncio.run(_create_user(settings, args))
    if args.command == "token":
        return asyncio.run(_create_token(settings, args))
    if args.command == "worker":
        from server.jobs import run_worker

        return run_worker(settings)
    if args.command == "transcribe":
        return _transcribe_file(settings, args)
    return 2  # pragma: no cover - argparse enforces the commands


def _transcribe_file(settings: Settings, args: argparse.Namespace) -> int:
    """Transcribe ``args.file`` with the configured model; the chosen format on stdout."""
    from transcription import (
        AudioError,
        ModelError,
        Speaker,
        Transcriber,
        initial_prompt,
        merge_by_time,
        resolve_model,
        to_json,
        to_srt,
        to_webvtt,
    )

    language = args.language or settings.default_language
    if not (len(language) in (2, 3) and language.isalpha() and language.islower()):
        print(f"hoidong: {language!r} is not a language code (e.g. vi, en)", file=sys.stderr)
        return 2
    try:
        model = resolve_model(settings.whisper_model, settings.model_cache_dir)
        transcriber = Transcriber(model, cpu_threads=settings.resolved_cpu_threads,
                                  compute_type=settings.whisper_compute_type,
                                  beam_size=settings.whisper_beam_size,
                                  temperature_fallback=settings.whisper_temperature_fallback,
                                  fallback_temperatures=settings.fallback_temperatures,
                                  batch_size=settings.whisper_batch_size)
    except ModelError as exc:
        print(f"hoidong: {exc}", file=sys.stderr)
        return 1
    if transcriber.multilingual and language not in transcriber.languages:
        print(f"hoidong: the model does not know the language {language!r}", file=sys.stderr)
        return 2
    try:
        # A language asked for is imposed; otherwise the track may be in any of the
        # configured ones, as a participant's track in a session.
        track = transcriber.transcribe_track(
            args.file, language=language, prompt=lambda code: initial_prompt(None, code),
            others=() if args.language else settings.other_language_codes)
    except AudioError as exc:
        print(f"hoidong: {exc}", file=sys.stderr)
        return 1
    speaker = Speaker("speaker", args.speaker or args.file.stem, "")
    merged = merge_by_time([(speaker, 0.0, track.segments)])
    if args.format == "json":
        import json

        document = to_json(merged, session_id="", language=track.language or language,
                           model=settings.whisper_model, speakers=[speaker])
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=1) + "\n")
    elif args.format == "vtt":
        sys.stdout.write(to_webvtt(merged))
    elif args.format == "srt":
        sys.stdout.write(to_srt(merged))
    else:
        sys.stdout.write("".join(seg.text.strip() + "\n" for seg in merged))
    return 0


def _serve(settings: Settings) -> int:
    import ssl

    from aiohttp import web

    from server.app import create_app
    from server.state import LIVE

    context = None
    if settings.tls_cert or settings.tls_key:
        if not (settings.tls_cert and settings.tls_key):
            print("hoidong: TLS needs both --tls-cert and --tls-key", file=sys.stderr)
            return 2
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(settings.tls_cert, settings.tls_key)
        except (OSError, ssl.SSLError) as exc:
            print(f"hoidong: cannot use the TLS certificate or key: {exc}", file=sys.stderr)
            return 2
    scheme = "https" if context else "http"
    print(f"hoidong: serving on {scheme}://{settings.host}:{settings.port} "
          f"(data in {Path(settings.data_dir).resolve()})", flush=True)
    app = create_app(settings)

    async def start_worker(app: web.Application) -> None:
        # Tests' apps start it when first needed (each would pay a process start).
        await app[LIVE].start_worker()

    app.on_startup.append(start_worker)
    web.run_app(app, host=settings.host, port=settings.port, print=None,
                ssl_context=context)
    return 0


async def _open_db(settings: Settings) -> Any:
    from server.database import Database, migrate

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await migrate(settings.resolved_database_url)
    return Database(settings.resolved_database_url)


async def _create_user(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import IntegrityError

    from server.auth import create_user

    password = args.password
    if password is None and args.generate_password:
        password = secrets.token_urlsafe(12)
        print(f"password: {password}")
    elif password is None:
        password = getpass.getpass("password: ")
    if len(password) < 8:
        print("hoidong: the password must be at least 8 characters", file=sys.stderr)
        return 2
    db = await _open_db(settings)
    try:
        user = await create_user(db, username=args.username, password=password,
                                 role=args.role, display_name=args.display_name)
    except IntegrityError:
        print(f"hoidong: user {args.username!r} exists already", file=sys.stderr)
        return 1
    finally:
        await db.close()
    print(f"created {user.role} {user.username!r} ({user.id})")
    return 0


async def _create_token(settings: Settings, args: argparse.Namespace) -> int:
    from server.auth import create_api_token

    db = await _open_db(settings)
    try:
        token = await create_api_token(db, username=args.user, name=args.name)
    except LookupError:
        print(f"hoidong: no user {args.user!r}", file=sys.stderr)
        return 1
    finally:
        await db.close()
    print(token)
    return 0


def _verify_package(path: Path, lang: str, tsa_certs: list[Path] | None = None) -> int:
    """``hoidong verify``: needs no settings, database or network."""
    from server.i18n import t
    from storage.archive import PackageError, verify_package

    langs = ["vi", "en"] if lang == "both" else [lang]

    def say(key: str, params: dict[str, object] | None = None) -> None:
        for code in langs:
            print(t(key, code, params))

    anchors = None
    if tsa_certs:
        from cryptography import x509

        try:
            anchors = [x509.load_pem_x509_certificate(p.read_bytes()) for p in tsa_certs]
        except (OSError, ValueError) as exc:
            say("verify.bad_certificate", {"error": str(exc)[:200]})
            return 2
    try:
        report = verify_package(path, anchors)
    except PackageError as exc:
        say("verify.cannot_check", {"path": str(path)})
        say(exc.code, dict(exc.params))
        return 2
    except OSError as exc:
        say("verify.cannot_check", {"path": str(path)})
        print(str(exc))
        return 2
    say("verify.summary", {"path": str(path), "files": report.files,
                           "mb": f"{report.bytes / 1e6:.1f}", "chains": report.chains,
                           "events": report.events, "root": report.merkle_root})
    for path_in_bag, signer in report.signatures:
        say("verify.signature", {"path": path_in_bag, "signer": signer})
    if report.timestamp is not None:
        say("verify.timestamp", {"at": report.timestamp.gen_time.isoformat(),
                                 "tsa": report.timestamp.tsa})
    if report.ok:
        say("verify.ok")
        return 0
    say("verify.failed", {"count": len(report.problems)})
    for problem in report.problems:
        say(problem.code, dict(problem.params))
    return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
