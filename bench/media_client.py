"""One benchmark client process hosting several peers.

Each peer joins through the signalling WebSocket, sends the pre-encoded fixture at
real-time pace (no encoding), offers one receive slot per kind for every other
participant, and counts the frames arriving on each slot. Counting is as cheap as it
can be, so that 20 participants' clients fit beside the server on two cores: once SRTP
is up, each media datagram is read straight off the socket (SSRC, timestamp, marker
bit, which SRTP leaves in clear: a frame ends at the marker) instead of going through
aioice's STUN parsing and queue, decryption, aiortc's packet objects, jitter buffer and
decoder thread. Writes a JSON report: frames sent and
received within the measurement window, per-frame delays and the process's own CPU
time.

    python -m bench.media_client SPEC.json OUT.json
"""

from __future__ import annotations

import asyncio
import fractions
import json
import os
import pickle
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)

from bench import media_fixture
from bench.proc import cpu_seconds
from media import consent

# The peers stand in for browsers, which keep ICE consent as RFC 7675 says: 30 s without
# an answer, not aioice's six checks answered later than 0.5 s (media.consent).
consent.install()

STEP = {"video": 3000, "audio": 960}
RCVBUF = 4 * 1024 * 1024  # bytes; the kernel caps it at net.core.rmem_max
RATE = {"video": 90000, "audio": 48000}


class PacketTrack(MediaStreamTrack):
    """Loops pre-encoded frames at real-time pace; counts what it sends in the window."""

    def __init__(self, kind: str, frames: list[bytes], window: tuple[float, float]) -> None:
        super().__init__()
        self.kind = kind
        self._frames = frames
        self._i = 0
        self._start: float | None = None
        self._window = window
        self.sent_in_window = 0
        self.lag_ms: list[float] = []  # how late each frame in the window left (ms)
        self._tb = fractions.Fraction(1, RATE[kind])
        self._period = STEP[kind] / RATE[kind]

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.time()
        due = self._start + self._i * self._period
        wait = due - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        packet = av.Packet(self._frames[self._i % len(self._frames)])
        packet.pts = self._i * STEP[self.kind]
        packet.time_base = self._tb
        self._i += 1
        now = time.time()
        if self._window[0] <= now < self._window[1]:
            self.sent_in_window += 1
            self.lag_ms.append(round((now - due) * 1000, 1))
        return packet


def ssrcs_by_mid(sdp: str) -> list[tuple[int, str]]:
    """(SSRC, mid) of every ``a=ssrc`` line in ``sdp``, by the m-section it is in."""
    out: list[tuple[int, str]] = []
    mid = ""
    ssrcs: set[int] = set()
    for line in [*sdp.splitlines(), "m=end"]:
        if line.startswith("m="):
            out += [(ssrc, mid) for ssrc in ssrcs]
            mid, ssrcs = "", set()
        elif line.startswith("a=mid:"):
            mid = line[6:].strip()
        elif line.startswith("a=ssrc:"):
            ssrcs.add(int(line[7:].split()[0]))
    return out


async def run_peer(spec: dict[str, Any], me: dict[str, str], fixture: dict[str, list[bytes]],
                   report: dict[str, Any]) -> None:
    window = (spec["window_start"], spec["window_end"])
    received: dict[str, list[tuple[float, int, int]]] = {}
    slots_map: dict[str, str] = {}
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(spec["ws_url"], max_msg_size=0)
        await ws.send_json(
            {"type": "hello", "token": me["token"], "session_id": spec["session_id"]}
        )
        welcome = await ws.receive_json()
        assert welcome["type"] == "welcome", welcome
        pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        # A peer may bring its own speech (bench/incremental.py): pickled Opus packets.
        own = {"audio": pickle.loads(await asyncio.to_thread(
            Path(me["audio_packets"]).read_bytes))} if me.get("audio_packets") else {}
        tracks = {k: PacketTrack(k, own.get(k) or fixture[k], window)
                  for k in ("audio", "video")}
        for track in tracks.values():
            pc.addTransceiver(track, direction="sendonly")
        slots = [pc.addTransceiver(kind, direction="recvonly")
                 for _ in range(welcome["receive_slots"]) for kind in ("audio", "video")]
        await pc.setLocalDescription(await pc.createOffer())
        def note_slots(data: dict[str, Any]) -> None:
            for s in data["slots"]:
                if s["participant"]:
                    slots_map[s["mid"]] = s["participant"]["id"]

        await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
        rates = {"audio": 48000, "video": 90000}
        while True:
            msg = await ws.receive_json()
            if msg["type"] == "answer":
                break
            if msg["type"] == "slots":  # a server may announce before it answers
                note_slots(msg)
        await pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))
        kinds = {str(t.mid): t.kind for t in slots}
        by_ssrc = {ssrc: (received.setdefault(mid, []), rates[kinds[mid]])
                   for ssrc, mid in ssrcs_by_mid(msg["sdp"]) if mid in kinds}
        dtls: Any = slots[0].receiver.transport
        keep: list[socket.socket] = []  # our duplicates of the peer's sockets

        def count(header: bytes) -> None:
            """Note a frame from an RTP header (plain, or SRTP: SRTP encrypts the payload,
            not the header). A frame ends at the marker bit; RTX and unknown SSRCs are
            not frames. The benchmark counts frames, it does not check them."""
            if header[1] & 0x80:
                entry = by_ssrc.get(int.from_bytes(header[8:12], "big"))
                if entry is not None:
                    now = time.time()
                    if window[0] <= now < window[1]:
                        entry[0].append((now, int.from_bytes(header[4:8], "big"), entry[1]))

        async def count_rtp(data: bytes, arrival_time_ms: int) -> None:
            count(data)  # decrypted by aiortc, until the shortcut below is in place

        dtls._handle_rtp_data = count_rtp

        def count_datagram(data: bytes) -> bool:
            """Count an SRTP datagram straight off the socket; False: not ours to take."""
            if not 128 <= data[0] < 192 or 192 <= data[1] <= 223 or len(data) < 12:
                return False  # STUN, DTLS or RTCP: aioice and aiortc handle those
            count(data)
            return True

        async def shortcut_when_connected() -> None:
            # aioice parses every datagram as STUN first and queues it for a task, and
            # asyncio reads one datagram per loop iteration; once SRTP is up, the socket
            # is drained in one callback and media datagrams skip all that.
            while dtls._rx_srtp is None:
                await asyncio.sleep(0.05)
            loop = asyncio.get_running_loop()
            for proto in dtls.transport._connection._protocols:
                sock = proto.transport.get_extra_info("socket")
                if sock is None:
                    continue
                # ~38 streams per peer: a short stall must not overflow the socket.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
                raw = socket.socket(fileno=os.dup(sock.fileno()))
                raw.setblocking(False)
                keep.append(raw)

                def drain(raw: socket.socket = raw, proto: Any = proto) -> None:
                    for _ in range(256):  # then let the loop breathe
                        try:
                            data, addr = raw.recvfrom(4096)
                        except (BlockingIOError, InterruptedError):
                            return
                        except OSError:
                            loop.remove_reader(raw.fileno())
                            return
                        if not count_datagram(data):
                            proto.datagram_received(data, addr)

                # asyncio's one-datagram reader goes (the public remove_reader refuses a
                # descriptor that a transport owns); ours reads the duplicate.
                loop._remove_reader(sock.fileno())  # type: ignore[attr-defined]
                loop.add_reader(raw.fileno(), drain)

        shortcut = asyncio.create_task(shortcut_when_connected())

        async def read() -> None:
            async for m in ws:
                data = json.loads(m.data)
                if data.get("type") == "slots":
                    note_slots(data)

        reader = asyncio.create_task(read())
        await asyncio.sleep(max(0.0, spec["window_end"] - time.time()) + 0.5)
        reader.cancel()
        if shortcut.done():
            shortcut.result()  # a shortcut that failed fails the run, not measure slowly
        shortcut.cancel()
        for raw in keep:
            asyncio.get_running_loop().remove_reader(raw.fileno())
            raw.close()
        await pc.close()
        await ws.close()
    per_source: dict[str, dict[str, Any]] = {}
    for mid, frames in received.items():
        source = slots_map.get(mid)
        if source is None or not frames:
            continue
        kind = next(t.kind for t in slots if str(t.mid) == mid)
        # Delay of each frame relative to the stream's own timeline, from the best frame.
        t0, ts0, rate = frames[0]
        # RTP timestamps are 32-bit and start anywhere: differences are taken modulo 2^32.
        rel = [(t - t0) - (((ts - ts0 + 2**31) % 2**32) - 2**31) / rate for t, ts, _ in frames]
        base = min(rel)
        per_source[f"{source}/{kind}"] = {
            "frames": len(frames), "delays_ms": [round((d - base) * 1000, 2) for d in rel],
        }
    report[me["id"]] = {
        "sent": {k: t.sent_in_window for k, t in tracks.items()},
        # A client that cannot keep pace sends late: its frames look delayed downstream.
        "send_lag_ms": tracks["video"].lag_ms,
        "received": per_source,
    }


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    if spec.get("nice"):
        os.nice(int(spec["nice"]))
    fixture = media_fixture.load()
    report: dict[str, Any] = {}
    cpu0 = cpu_seconds()
    await asyncio.gather(*(run_peer(spec, me, fixture, report) for me in spec["peers"]))
    report["_cpu_s"] = cpu_seconds() - cpu0
    return report


if __name__ == "__main__":
    spec = json.loads(Path(sys.argv[1]).read_text())
    Path(sys.argv[2]).write_text(json.dumps(asyncio.run(run(spec))))
