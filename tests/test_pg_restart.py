"""PostgreSQL restarted under load (issue 10): the service recovers without manual action.

A throw-away PostgreSQL cluster of the test's own (initdb into a temporary directory, a
free port; the machine's shared instance is never touched) and a real ``hoidong serve``
process on it. Several clients keep a steady stream of reads and writes going (dossiers,
sessions, logins) while the cluster is restarted twice: ``pg_ctl restart -m fast``, then
the hard case ``pg_ctl stop -m immediate`` and a start a few seconds later. Shown:

* while the database is away a request is answered at once with a 503 carrying the
  catalogue's ``database.unavailable`` in Vietnamese and English — never another 5xx,
  never a dropped connection, never a hang — and ``/readyz`` names the database;
* once PostgreSQL is back the service serves again by itself within ``RECOVERY_S``, and
  every request from then on succeeds;
* every write that was acknowledged (2xx) is in the database afterwards, and every audit
  chain still verifies.

``HOIDONG_WRITE_RESULTS=1`` writes the figures to ``bench/results/reliability/pg_restart.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from server.audit import verify_chains
from server.auth import create_api_token, token_hash
from server.database import Database, DatabaseUnavailable, is_unavailable
from server.errors import error_middleware
from server.i18n import both
from server.models import Dossier, LoginSession, MeetingSession
from tests.conftest import need
from tests.test_serve import free_port

ROOT = Path(__file__).resolve().parent.parent
HOIDONG = Path(sys.executable).with_name("hoidong")
RESULTS = ROOT / "bench" / "results" / "reliability" / "pg_restart.json"
PASSWORD = "mật-khẩu-thử-nghiệm"
CLIENTS = 4
WARM_S = 3.0  # steady load before the first restart and after each recovery
HARD_DOWN_S = 3.0  # how long the cluster stays stopped in the hard case
RECOVERY_S = 10.0  # the bound: PostgreSQL back -> the service serves again
SETTLE_S = 2.0  # after the first success, until every request succeeds
HANG_S = 10.0  # no request may take longer than this
UNAVAILABLE = "database.unavailable"


# -- a throw-away cluster ---------------------------------------------------------------

def pg_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: HOIDONG_TEST_PG_BIN, Debian's newest, else PATH."""
    candidates = [Path(p) for p in [os.environ.get("HOIDONG_TEST_PG_BIN", "")] if p]
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit()
                         else 0, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for d in candidates:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    return None


class Cluster:
    """initdb, pg_ctl start/restart/stop; as ``postgres`` when the tests run as root
    (initdb refuses root), in a directory of its own outside pytest's root-only tmp."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                need(False, "a 'postgres' user to run initdb as (the tests run as root)")
        self.root = Path(tempfile.mkdtemp(prefix="hoidong-pg-"))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/hoidong"

    def pg(self, tool: str, *args: str, timeout: float = 60) -> None:
        """Run ``tool``; its output goes to a file (a pipe would be held open by the
        postmaster it starts)."""
        cmd = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            cmd = ([runuser, "-u", "postgres", "--", *cmd] if runuser
                   else ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(cmd)])
        with (self.root / "pg_ctl.out").open("ab") as out:
            subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                           check=True, timeout=timeout, cwd=self.root)

    def init(self) -> None:
        self.pg("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                "--no-locale", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as f:
            f.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.root}'\nmax_connections = 40\n")

    def start(self) -> None:
        self.pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def restart_fast(self) -> None:
        self.pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                "-m", "fast", "restart")

    def stop(self, mode: str) -> None:
        self.pg("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", mode, "stop")

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.SubprocessError:
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)

    async def create_database(self) -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres",
                                     database="postgres")
        try:
            await conn.execute('CREATE DATABASE "hoidong"')
        finally:
            await conn.close()


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    bin_dir = pg_bin_dir()
    need(bin_dir is not None, "PostgreSQL's server binaries (initdb, pg_ctl)")
    assert bin_dir is not None
    cluster = Cluster(bin_dir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@contextmanager
def hoidong_serve(cluster: Cluster, data: Path, port: int, log: Path
                  ) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOIDONG_")}
    env.update(HOIDONG_DATA_DIR=str(data), HOIDONG_DATABASE_URL=cluster.url,
               HOIDONG_ADMIN_PASSWORD=PASSWORD, HOIDONG_TRANSCRIBE_ON_END="false",
               HOIDONG_RUN_WORKER="false", HOIDONG_WHISPER_MODEL="tiny.en",
               PYTHONUNBUFFERED="1")
    with log.open("ab") as out:
        proc = subprocess.Popen([str(HOIDONG), "serve", "--port", str(port)], env=env,
                                cwd=data.parent, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


# -- the load ---------------------------------------------------------------------------

@dataclass
class Call:
    op: str
    write: bool
    started: float
    ended: float
    status: int  # 0: no HTTP answer at all (connection dropped, or a timeout)
    code: str = ""  # the error body's catalogue key
    message: Any = None
    retry_after: str | None = None


@dataclass
class Load:
    http: aiohttp.ClientSession
    base: str
    token: str
    calls: list[Call] = field(default_factory=list)
    probes: list[Call] = field(default_factory=list)  # /readyz, every 100 ms
    dossiers: dict[str, str] = field(default_factory=dict)  # acknowledged: id -> title
    sessions: dict[str, str] = field(default_factory=dict)
    logins: list[str] = field(default_factory=list)  # acknowledged login cookies
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def call(self, op: str, method: str, path: str, body: Any = None, *,
                   write: bool = False, bearer: bool = True, into: list[Call] | None = None
                   ) -> tuple[Call, Any, aiohttp.ClientResponse | None]:
        headers = {"Authorization": f"Bearer {self.token}"} if bearer else {}
        started = time.monotonic()
        data: Any = None
        resp_out: aiohttp.ClientResponse | None = None
        status, code, message, retry = 0, "", None, None
        try:
            async with self.http.request(method, self.base + path, json=body,
                                         headers=headers) as resp:
                status, resp_out = resp.status, resp
                retry = resp.headers.get("Retry-After")
                data = await resp.json(content_type=None)
                if status >= 400 and isinstance(data, dict) and "error" in data:
                    code, message = data["error"].get("code", ""), data["error"].get("message")
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            code = type(exc).__name__
        c = Call(op, write, started, time.monotonic(), status, code, message, retry)
        (self.calls if into is None else into).append(c)
        return c, data, resp_out

    async def client(self, i: int) -> None:
        n, mine = 0, list[str]()
        while not self.stopping.is_set():
            n += 1
            title = f"Hồ sơ tải {i}-{n}"
            c, body, _ = await self.call("dossier.create", "POST", "/api/dossiers",
                                         {"title": title, "phase": "appraisal"}, write=True)
            if c.status == 201:
                self.dossiers[body["id"]] = title
                mine.append(body["id"])
            if mine:
                d = mine[-1]
                title = f"Phiên tải {i}-{n}"
                c, body, _ = await self.call(
                    "session.create", "POST", f"/api/dossiers/{d}/sessions",
                    {"kind": "council_meeting", "title": title}, write=True)
                if c.status == 201:
                    self.sessions[body["id"]] = title
                await self.call("dossier.read", "GET", f"/api/dossiers/{d}")
                await self.call("session.list", "GET", f"/api/dossiers/{d}/sessions")
            if n % 25 == i:
                await self.call("dossier.list", "GET", "/api/dossiers")
            if i == 0 and n % 6 == 0:  # argon2: a login costs the server ~0.1 s of CPU
                c, _, resp = await self.call("login", "POST", "/api/login", {
                    "username": "admin", "password": PASSWORD}, write=True, bearer=False)
                if c.status == 200 and resp is not None:
                    self.logins.append(resp.cookies["hoidong_login"].value)
            await asyncio.sleep(0.005)

    async def probe(self) -> None:
        while not self.stopping.is_set():
            await self.call("readyz", "GET", "/readyz", bearer=False, into=self.probes)
            await asyncio.sleep(0.1)


@asynccontextmanager
async def running_load(load: Load) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(load.client(i)) for i in range(CLIENTS)]
    tasks.append(asyncio.create_task(load.probe()))
    try:
        yield
    finally:
        load.stopping.set()
        await asyncio.gather(*tasks)


async def wait_recovered(load: Load, back_at: float) -> float:
    """When the service served again after PostgreSQL came back at ``back_at``: /readyz
    answered 200 and a client's write was acknowledged, both begun after ``back_at``."""
    deadline = back_at + RECOVERY_S
    while time.monotonic() < deadline:
        ready = [p.ended for p in load.probes if p.started >= back_at and p.status == 200]
        wrote = [c.ended for c in load.calls
                 if c.write and c.started >= back_at and 200 <= c.status < 300]
        if ready and wrote:
            return max(min(ready), min(wrote))
        await asyncio.sleep(0.05)
    raise AssertionError(f"the service did not recover within {RECOVERY_S} s")


async def wait_ready(http: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes],
                     log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, tail(log)
        try:
            async with http.get(base + "/readyz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.3)
    raise AssertionError("hoidong serve did not come up: " + tail(log))


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def summary(calls: list[Call]) -> dict[str, int]:
    return {
        "sent": len(calls),
        "acknowledged": sum(200 <= c.status < 300 for c in calls),
        "failed_503": sum(c.status == 503 for c in calls),
        "failed_5xx_other": sum(c.status >= 500 and c.status != 503 for c in calls),
        "failed_4xx": sum(400 <= c.status < 500 for c in calls),
        "no_answer": sum(c.status == 0 for c in calls),
    }


# -- the tests --------------------------------------------------------------------------

def _driver_error(cause: BaseException) -> sa_exc.DBAPIError:
    """As SQLAlchemy raises it: its adapter's error, the driver's own as the cause."""
    orig = Exception(str(cause))
    orig.__cause__ = cause
    return sa_exc.DBAPIError("SELECT 1", {}, orig)


@pytest.mark.parametrize(("exc", "away"), [
    (DatabaseUnavailable("refused"), True),
    (_driver_error(asyncpg.ConnectionDoesNotExistError("closed in the middle")), True),
    (_driver_error(asyncpg.CannotConnectNowError("the database system is starting up")), True),
    (_driver_error(asyncpg.AdminShutdownError("terminating connection")), True),
    (sa_exc.DBAPIError("SELECT 1", {}, Exception("x"), connection_invalidated=True), True),
    (sa_exc.TimeoutError("QueuePool limit reached"), True),
    (_driver_error(asyncpg.UniqueViolationError("duplicate key")), False),
    (_driver_error(asyncpg.QueryCanceledError("statement timeout")), False),
    (sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")), False),
    (OSError("No space left on device"), False),  # not the database's: still a 500
    (RuntimeError("a bug"), False),
])
def test_what_counts_as_the_database_away(exc: BaseException, away: bool) -> None:
    assert is_unavailable(exc) is away


async def test_the_database_away_is_a_503_a_bug_still_a_500() -> None:
    async def away(_: web.Request) -> web.Response:
        raise _driver_error(asyncpg.ConnectionDoesNotExistError("closed"))

    async def disk(_: web.Request) -> web.Response:
        raise OSError("No space left on device")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/api/away", away)
    app.router.add_get("/api/disk", disk)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/api/away")
        assert resp.status == 503 and resp.headers["Retry-After"] == "2"
        assert await resp.json() == {"error": {"code": UNAVAILABLE, "message": both(UNAVAILABLE)}}
        resp = await client.get("/api/disk")
        assert resp.status == 500 and (await resp.json())["error"]["code"] == "http.internal"


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_postgres_restarted_under_load(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    restarts: list[dict[str, Any]] = []
    timeout = aiohttp.ClientTimeout(total=HANG_S)
    with throwaway_cluster() as cluster:
        await cluster.create_database()
        with hoidong_serve(cluster, tmp_path / "data", port, log) as proc:
            connector = aiohttp.TCPConnector(limit=CLIENTS + 4)
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
                await wait_ready(http, base, proc, log)
                db = Database(cluster.url)
                try:
                    token = await create_api_token(db, username="admin", name="load")
                finally:
                    await db.close()
                load = Load(http, base, token)
                begun = time.monotonic()
                async with running_load(load):
                    await asyncio.sleep(WARM_S)

                    # 1. pg_ctl restart -m fast: backends terminated, the server back at once.
                    down_at = time.monotonic()
                    await asyncio.to_thread(cluster.restart_fast)
                    back_at = time.monotonic()
                    recovered_at = await wait_recovered(load, back_at)
                    restarts.append({"kind": "pg_ctl restart -m fast", "down_at": down_at,
                                     "back_at": back_at, "recovered_at": recovered_at})
                    await asyncio.sleep(WARM_S)

                    # 2. pg_ctl stop -m immediate (no shutdown checkpoint, connections cut),
                    #    a start HARD_DOWN_S later.
                    down_at = time.monotonic()
                    await asyncio.to_thread(cluster.stop, "immediate")
                    await asyncio.sleep(0.5)
                    ready, ready_body, _ = await load.call("readyz", "GET", "/readyz",
                                                           bearer=False, into=load.probes)
                    read, _, _ = await load.call("dossier.list", "GET", "/api/dossiers")
                    await asyncio.sleep(HARD_DOWN_S - 0.5)
                    await asyncio.to_thread(cluster.start)
                    back_at = time.monotonic()
                    recovered_at = await wait_recovered(load, back_at)
                    restarts.append({"kind": "pg_ctl stop -m immediate, start after "
                                     f"{HARD_DOWN_S:g} s", "down_at": down_at,
                                     "back_at": back_at, "recovered_at": recovered_at})
                    await asyncio.sleep(WARM_S)
                ended = time.monotonic()
                assert proc.poll() is None, "hoidong serve died"

        # What was acknowledged is there, and the audit chains hold.
        db = Database(cluster.url)
        try:
            async with db.session() as s:
                stored_dossiers = {i: t for i, t in (await s.execute(
                    select(Dossier.id, Dossier.title))).all()}
                stored_sessions = {i: t for i, t in (await s.execute(
                    select(MeetingSession.id, MeetingSession.title))).all()}
                stored_logins = set((await s.execute(
                    select(LoginSession.token_hash))).scalars().all())
            chains = await verify_chains(db)
        finally:
            await db.close()

    server_log = log.read_text(errors="replace")
    calls = load.calls
    figures = summary(calls)
    lost = (
        [i for i, t in load.dossiers.items() if stored_dossiers.get(i) != t]
        + [i for i, t in load.sessions.items() if stored_sessions.get(i) != t]
        + [c for c in load.logins if token_hash(c) not in stored_logins]
    )
    acked_titles = set(load.dossiers.values()) | set(load.sessions.values())
    unacked_stored = sum(t.startswith(("Hồ sơ tải", "Phiên tải")) and t not in acked_titles
                         for t in [*stored_dossiers.values(), *stored_sessions.values()])
    for r, following in zip(restarts, [*restarts[1:], None], strict=True):
        until = following["down_at"] if following else ended
        window = [c for c in calls if r["down_at"] <= c.ended and c.started <= r["recovered_at"]]
        failed = [c for c in window if c.status != 200 and c.status != 201]
        r["failed_503"] = sum(c.status == 503 for c in window)
        r["readyz_503"] = sum(p.status == 503 and r["down_at"] <= p.ended <= r["recovered_at"]
                              for p in load.probes)
        r["clients_saw_outage_s"] = round(
            max(c.ended for c in failed) - min(c.started for c in failed), 3) if failed else 0.0
        r["postgres_down_s"] = round(r["back_at"] - r["down_at"], 3)
        r["recovery_s"] = round(r["recovered_at"] - r["back_at"], 3)
        # A pooled connection that died with the old server may still be handed out
        # once right after the first success (seen once in CI under load): the bound
        # is that from SETTLE_S after it everything succeeds.
        r["failed_while_settling"] = sum(
            c.status not in (200, 201) for c in calls
            if r["recovered_at"] < c.started <= r["recovered_at"] + SETTLE_S)
        # Up to the next outage: a request still in flight when the next stop begins
        # is that outage's (it may be cut with its connection), not a failure to recover.
        r["failed_after_recovery"] = sum(
            c.status not in (200, 201) for c in calls
            if r["recovered_at"] + SETTLE_S < c.started and c.ended < until)
    results = {
        "what": "PostgreSQL restarted under load (tests/test_pg_restart.py)",
        "postgres": str(cluster.bin_dir),
        "clients": CLIENTS,
        "duration_s": round(ended - begun, 1),
        "requests": figures,
        "writes_acknowledged": {"dossiers": len(load.dossiers), "sessions": len(load.sessions),
                                "logins": len(load.logins)},
        "lost_acknowledged_writes": len(lost),
        "unacknowledged_writes_found_stored": unacked_stored,
        "max_request_s": round(max(c.ended - c.started for c in calls), 3),
        "readyz_probes": summary(load.probes),
        "audit_chains": {"checked": len(chains), "ok": sum(c.ok for c in chains)},
        "restarts": [{k: v for k, v in r.items() if not k.endswith("_at")} for r in restarts],
        "recovery_bound_s": RECOVERY_S,
        "command": "HOIDONG_WRITE_RESULTS=1 .venv/bin/pytest tests/test_pg_restart.py "
                   "-p no:cacheprovider",
    }
    if os.environ.get("HOIDONG_WRITE_RESULTS") == "1":
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n",
                           encoding="utf-8")
    print(json.dumps(results, indent=1, ensure_ascii=False))

    # During the hard outage: a clear 503, readiness naming the database.
    assert ready.status == 503 and ready_body == {"status": "unavailable",
                                                  "failed": ["database"]}, ready_body
    assert read.status == 503 and read.code == UNAVAILABLE, read
    assert read.message == both(UNAVAILABLE) and read.retry_after, read
    # Never another 5xx, a dropped connection, a 4xx or a hang; every failure a clear 503.
    assert figures["failed_5xx_other"] == 0 and figures["no_answer"] == 0, figures
    assert figures["failed_4xx"] == 0, figures
    assert all(c.code == UNAVAILABLE and c.message == both(UNAVAILABLE)
               for c in calls if c.status == 503)
    assert results["max_request_s"] < HANG_S
    assert "unhandled error" not in server_log, server_log[-3000:]
    assert figures["failed_503"] > 0  # the outages were real
    for r in restarts:
        assert r["recovery_s"] <= RECOVERY_S, r
        assert r["failed_after_recovery"] == 0, r
    assert restarts[1]["readyz_503"] > 0, restarts[1]
    # Nothing acknowledged was lost; the audit chains still verify.
    assert not lost, lost[:10]
    assert len(load.dossiers) > 50 and len(load.sessions) > 50 and load.logins
    assert chains and all(c.ok for c in chains), [c for c in chains if not c.ok][:3]
