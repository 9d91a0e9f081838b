"""RFC 3161 time-stamps of package roots: the token read and checked offline (imprint,
signature, trust), packages stamped by a configured TSA, a TSA that refuses leaving the
package unstamped with the reason recorded, and ``hoidong verify`` reporting the stamp."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from storage.archive import verify_package
from storage.timestamp import TimestampError, check_token, request_der, token_from_response
from tests.conftest import make_settings, start_app
from tests.tsa import make_certificate, running_tsa, sign

ROOT = "ab" * 32
ROOT_DIR = Path(__file__).resolve().parent.parent


def test_a_token_is_checked_offline() -> None:
    key, cert = make_certificate("TSA một")
    token = token_from_response(sign(request_der(ROOT), key, cert, 7))
    stamped = check_token(token, ROOT)
    assert "TSA một" in stamped.tsa and stamped.trusted is None
    assert check_token(token, ROOT, anchors=[cert]).trusted is True
    _, other = make_certificate("TSA khác")
    for bad, code, anchors in [
        (token, "timestamp.wrong_imprint", None),  # checked against another root
        (token[:-40] + bytes(40), "timestamp.bad_token", None),
        (token, "timestamp.untrusted", [other]),
    ]:
        root = "cd" * 32 if code == "timestamp.wrong_imprint" else ROOT
        with pytest.raises(TimestampError) as err:
            check_token(bad, root, anchors)
        assert err.value.code in (code, "timestamp.bad_signature"), err.value.code
    # One flipped bit in the signature (the token's last bytes are the signature).
    flipped = token[:-1] + bytes([token[-1] ^ 1])
    with pytest.raises(TimestampError) as err:
        check_token(flipped, ROOT)
    assert err.value.code == "timestamp.bad_signature"
    with pytest.raises(TimestampError) as err:
        token_from_response(b"\x30\x03\x02\x01\x02")  # status "rejection", no token
    assert err.value.code in ("timestamp.refused", "timestamp.bad_response")


async def test_packages_are_stamped_and_verify_reports_it(tmp_path: Path) -> None:
    async with running_tsa() as tsa:
        settings = make_settings(tmp_path, transcribe_on_end=False, tsa_url=tsa.url)
        async for r in start_app(settings):
            d = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ", "phase": "appraisal"},
                            201)
            s = await r.api("POST", f"/api/dossiers/{d['id']}/sessions",
                            {"kind": "council_meeting", "title": "Phiên họp"}, 201)
            await r.api("POST", f"/api/sessions/{s['id']}/start")
            await r.api("POST", f"/api/sessions/{s['id']}/end")
            package = await r.api("POST", f"/api/sessions/{s['id']}/packages", None, 201)
            assert package["timestamped_at"] and "Test TSA" in package["timestamp_tsa"]
            assert tsa.requests == 1
            zipped = tmp_path / "p.zip"
            zipped.write_bytes(await (await r.client.get(package["download_url"],
                                                         headers=r.auth())).read())
            report = verify_package(zipped)
            assert report.ok, report.problems
            assert report.timestamp is not None and "Test TSA" in report.timestamp.tsa
            check = await r.api("POST", f"/api/packages/{package['id']}/verify")
            assert check["ok"] and check["timestamped_at"], check
            # Offline, with the TSA's certificate as the trust anchor, and with another.
            cert = tmp_path / "tsa.pem"
            cert.write_bytes(tsa.pem)
            _, other = make_certificate("Không tin cậy")
            wrong = tmp_path / "other.pem"
            wrong.write_bytes(other.public_bytes(serialization.Encoding.PEM))
            for anchor, code, said in ((cert, 0, "RFC 3161 time-stamp of the Merkle root"),
                                       (wrong, 1, "not signed by a trusted")):
                out = await asyncio.to_thread(
                    subprocess.run, [sys.executable, "-m", "server.cli", "verify", str(zipped),
                                     "--tsa-cert", str(anchor), "--lang", "en"],
                    capture_output=True, text=True, cwd=ROOT_DIR, timeout=120)
                assert out.returncode == code, out.stdout + out.stderr
                assert said in out.stdout, out.stdout
            # A TSA that refuses: the package is still made, unstamped, and says why.
            tsa.refuse = True
            second = await r.api("POST", f"/api/sessions/{s['id']}/packages", None, 201)
            assert second["timestamped_at"] is None
            events = [e for e in await r.api("GET", f"/api/sessions/{s['id']}/audit")
                      if e["kind"] == "package.created"]
            assert "timestamp" in events[0]["data"] and "at" in events[0]["data"]["timestamp"]
            assert events[1]["data"]["timestamp"]["failed"] == "timestamp.refused"
            plain = tmp_path / "plain.zip"
            plain.write_bytes(await (await r.client.get(second["download_url"],
                                                        headers=r.auth())).read())
            assert verify_package(plain).ok and verify_package(plain).timestamp is None
