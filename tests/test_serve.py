"""`hoidong serve` as `make run` starts it: a real process on a real port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from media.ffmpeg import ffmpeg_path

HOIDONG = Path(sys.executable).with_name("hoidong")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_starts_migrates_prints_login_and_stops(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOIDONG_")}
    env.update(HOIDONG_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [str(HOIDONG), "serve", "--port", str(port)], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/staff", timeout=2) as r:
                    status = r.status
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.3)
        assert status == 200
        # The default model (multilingual base) is reassembled and checked at start-up.
        model = tmp_path / "data" / "models" / "whisper-base" / "model.bin"
        while time.monotonic() < deadline and not model.exists():
            time.sleep(0.3)
        assert model.exists()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"log in at http://127.0.0.1:{port}/staff as 'admin', password " in out
    assert (tmp_path / "data" / "hoidong.sqlite3").exists()
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0


def test_ffmpeg_falls_back_to_the_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    ffmpeg_path.cache_clear()
    monkeypatch.setenv("PATH", "/nonexistent")
    try:
        path = ffmpeg_path()
        assert "imageio_ffmpeg" in path
        out = subprocess.run([path, "-version"], capture_output=True, text=True, check=True)
        assert out.stdout.startswith("ffmpeg version")
    finally:
        ffmpeg_path.cache_clear()
