"""Operations endpoints: /healthz, /readyz (the object store going away makes it 503 and
says so), /metrics in the Prometheus format with live values from a real meeting."""

from __future__ import annotations

import asyncio
from pathlib import Path

from moto.server import ThreadedMotoServer
from prometheus_client.parser import text_string_to_metric_families

from media.consent import COUNTS as CONSENT
from tests.conftest import Running, make_settings, start_app
from tests.s3server import S3_TEST_CREDENTIALS
from tests.test_forwarding import close_all, join_with_media
from tests.test_signalling import invite, new_session


async def scrape(r: Running) -> dict[str, float]:
    resp = await r.client.get("/metrics")
    assert resp.status == 200 and resp.content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return out


async def test_health_readiness_and_metrics(tmp_path: Path) -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    access, secret = S3_TEST_CREDENTIALS
    settings = make_settings(
        tmp_path, segment_s=1.0, transcribe_on_end=False, storage_backend="minio",
        s3_endpoint=f"{host}:{port}", s3_access_key=access, s3_secret_key=secret,
        s3_bucket="hoidong-ops", storage_retry_max_s=1.0, malloc_trim_s=1.0)
    try:
        async for r in start_app(settings):
            assert (await r.client.get("/healthz")).status == 200
            ready = await r.client.get("/readyz")
            assert ready.status == 200 and (await ready.json())["status"] == "ready"
            before = await scrape(r)
            assert before["hoidong_live_sessions"] == 0
            sid = await new_session(r)
            people = [await invite(r, sid, name, "member") for name in ("An", "Bình")]
            clients = [await join_with_media(r, sid, who, receive_slots=1) for who in people]
            try:
                await asyncio.sleep(3)
                now = await scrape(r)
                assert now["hoidong_live_sessions"] == 1
                assert now["hoidong_participants_connected"] == 2
                assert now["hoidong_forwarded_frames_total"] > 100
                assert now["hoidong_forwarded_packets_total"] >= now[
                    "hoidong_forwarded_frames_total"]
                assert now["hoidong_forwarded_bytes_total"] > 10_000
                assert now["hoidong_transcription_jobs{status=pending}"] == 0
                assert "hoidong_transcription_job_seconds_count" in now
                # The loop was sampled ten times a second while the meeting ran.
                assert now["hoidong_event_loop_lag_seconds_count"] >= 20
                assert (now["hoidong_event_loop_lag_seconds_bucket{le=+Inf}"]
                        == now["hoidong_event_loop_lag_seconds_count"])
                assert 0 <= now["hoidong_event_loop_lag_max_seconds"] < 30
                # Process-wide totals (other tests' connections count too).
                assert now["hoidong_ice_consent_expired_total"] == CONSENT.expired
                assert now["hoidong_ice_consent_checks_total"] == CONSENT.checks
                # Freed memory was handed back once a second (glibc here).
                assert now["hoidong_malloc_trims_total"] >= 1
                assert now["hoidong_malloc_trim_returned_bytes_total"] >= 0
                assert 0 < now["hoidong_malloc_trim_longest_seconds"] < 5
                server.stop()  # the store goes away
                await asyncio.sleep(2.5)
                down = await r.client.get("/readyz")
                assert down.status == 503 and (await down.json())["failed"] == ["object_store"]
                assert (await scrape(r))["hoidong_segments_waiting_upload"] >= 1
                server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
                server.start()
                assert (await r.client.get("/readyz")).status == 200
            finally:
                await close_all(clients)
    finally:
        server.stop()


async def test_metrics_can_ask_for_a_bearer_token(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, transcribe_on_end=False, metrics_token="scrape-me-42")
    async for r in start_app(settings):
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": "scrape-me-42"},
                        {"Authorization": "Bearer scrape-me-42x"}):
            resp = await r.client.get("/metrics", headers=headers)
            assert resp.status == 401, headers
            body = await resp.json()
            assert body["error"]["code"] == "auth.required"
            assert body["error"]["message"]["vi"] and body["error"]["message"]["en"]
        ok = await r.client.get("/metrics", headers={"Authorization": "Bearer scrape-me-42"})
        assert ok.status == 200
        assert "hoidong_live_sessions" in await ok.text()
        # Health and readiness stay open: load balancers probe them without a secret.
        assert (await r.client.get("/healthz")).status == 200
