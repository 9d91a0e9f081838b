"""JSON logs carry the session and participant ids of the task that logs; a real
server with --log-format json writes nothing but JSON lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from server.logs import ContextFilter, JsonFormatter, bind
from tests.test_serve import HOIDONG, free_port


def test_json_records_carry_the_context() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("hoidong.test.logs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    async def participant() -> None:
        bind(session_id="s1", participant_id="p1")
        await asyncio.sleep(0)
        log.info("joined %s", "Nguyễn Văn An")
        await asyncio.create_task(_child())  # a child task inherits the ids

    async def _child() -> None:
        try:
            raise ValueError("bad SDP")
        except ValueError:
            log.exception("child failed")

    asyncio.run(participant())
    log.info("no context here")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["message"] == "joined Nguyễn Văn An"
    assert (lines[0]["session_id"], lines[0]["participant_id"]) == ("s1", "p1")
    assert lines[1]["session_id"] == "s1" and "ValueError: bad SDP" in lines[1]["exception"]
    assert "session_id" not in lines[2] and lines[2]["level"] == "INFO"
    log.removeHandler(handler)


def test_the_server_logs_json_lines(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOIDONG_")}
    env.update(HOIDONG_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1",
               HOIDONG_RUN_WORKER="false")
    proc = subprocess.Popen([str(HOIDONG), "serve", "--port", str(port), "--log-format", "json"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                assert proc.poll() is None
                time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, err
    for line in lines:
        record = json.loads(line)  # every line is one JSON object
        assert {"time", "level", "logger", "message"} <= set(record)
