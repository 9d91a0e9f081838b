"""The baseline for the media benchmark: aiortc's MediaRelay (decode, then encode per
subscriber), speaking the same signalling subset as hoidong so the same clients run
against both. No auth, no recording: it only forwards — which favours the baseline.

    python -m bench.naive_server PORT RECEIVE_SLOTS
"""

from __future__ import annotations

import json
import sys
from typing import Any

from aiohttp import WSMsgType, web
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.sdp import SessionDescription


class Member:
    def __init__(self, pid: str, ws: web.WebSocketResponse) -> None:
        self.pid = pid
        self.ws = ws
        self.pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.published: dict[str, MediaStreamTrack] = {}
        self.slots: list[tuple[str, str, RTCRtpTransceiver]] = []
        self.assigned: dict[str, str] = {}  # mid -> publisher id


members: dict[str, Member] = {}
relay = MediaRelay()


async def announce(m: Member) -> None:
    slots = [{"mid": mid, "kind": kind,
              "participant": {"id": m.assigned[mid]} if mid in m.assigned else None}
             for mid, kind, _ in m.slots]
    await m.ws.send_json({"type": "slots", "slots": slots})


def fill(sub: Member, pub: Member) -> bool:
    changed = False
    for kind, track in pub.published.items():
        if pub.pid in [p for mid, p in sub.assigned.items() if _kind(sub, mid) == kind]:
            continue
        for mid, slot_kind, transceiver in sub.slots:
            if slot_kind == kind and mid not in sub.assigned:
                transceiver.sender.replaceTrack(relay.subscribe(track))
                sub.assigned[mid] = pub.pid
                changed = True
                break
    return changed


def _kind(m: Member, mid: str) -> str:
    return next(k for x, k, _ in m.slots if x == mid)


async def socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    member: Member | None = None
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            break
        data: dict[str, Any] = json.loads(msg.data)
        if data["type"] == "hello":
            member = members[data["token"]] = Member(data["token"], ws)
            await ws.send_json({"type": "welcome", "participant": {"id": member.pid},
                                "receive_slots": request.app["slots"]})
        elif data["type"] == "offer" and member is not None:
            offer = SessionDescription.parse(data["sdp"])
            sends = {m.rtp.muxId: m.direction in ("sendonly", "sendrecv") for m in offer.media}

            @member.pc.on("track")
            def on_track(track: MediaStreamTrack, m: Member = member) -> None:
                m.published[track.kind] = track

            await member.pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "offer"))
            for t in member.pc.getTransceivers():
                if not sends.get(str(t.mid), False):
                    t.direction = "sendonly"
                    member.slots.append((str(t.mid), t.kind, t))
            await member.pc.setLocalDescription(await member.pc.createAnswer())
            await ws.send_json({"type": "answer", "sdp": member.pc.localDescription.sdp})
            # Offers are answered concurrently: re-check every pair, not only this one's.
            for sub in list(members.values()):
                changed = False
                for pub in list(members.values()):
                    if pub is not sub and fill(sub, pub):
                        changed = True
                if changed:
                    await announce(sub)
    if member is not None:
        members.pop(member.pid, None)
        await member.pc.close()
    return ws


def main() -> None:
    app = web.Application()
    app["slots"] = int(sys.argv[2])
    app.router.add_get("/ws/join", socket)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)


if __name__ == "__main__":
    main()
