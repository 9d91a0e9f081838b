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


def children_cmdlines(pid: int) -> list[bytes]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                out.append(Path(f"/proc/{child}/cmdline").read_bytes())
            except OSError:
                continue
    return out


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
        # The assembling worker process started with the server, not at the first leave.
        assert any(b"spawn_main" in cmdline for cmdline in children_cmdlines(proc.pid))
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


@pytest.mark.slow
def test_serve_over_tls(tmp_path: Path) -> None:
    """`hoidong serve --tls-cert --tls-key`: HTTPS with that certificate; only one of the
    two, or an unreadable key, is a clear error before anything starts."""
    import ipaddress
    import ssl
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOIDONG_")}
    env.update(HOIDONG_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1",
               HOIDONG_RUN_WORKER="false")
    for bad in (["--tls-cert", str(cert_file)], ["--tls-cert", str(cert_file), "--tls-key",
                                                 str(cert_file)]):
        out = subprocess.run([str(HOIDONG), "serve", "--port", str(free_port()), *bad],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and "TLS" in out.stderr, out.stderr
    port = free_port()
    proc = subprocess.Popen(
        [str(HOIDONG), "serve", "--port", str(port), "--tls-cert", str(cert_file),
         "--tls-key", str(key_file)], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = ssl.create_default_context(cafile=str(cert_file))  # verified, name included
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status is None:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=2,
                                            context=context) as r:
                    status = r.status
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.3)
        assert status == 200
        with pytest.raises(OSError):  # plain HTTP is not served on the TLS port
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert f"serving on https://127.0.0.1:{port}" in out, out
