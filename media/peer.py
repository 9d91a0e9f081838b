"""One participant's WebRTC connection to the server, and what it records.

A :class:`ParticipantPeer` answers the participant's offer, taps every incoming track
before decoding (:mod:`media.tap`) and writes it with a :class:`TrackRecorder` into
its own spool directory. Frames are also offered to an optional listener, where a
forwarder will hook in for multi-party meetings. The peer owns its recorders and the
files until :meth:`close` returns the :class:`RecordingResult` of each track.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from media import consent
from media.camera_monitor import CameraConfig, CameraMonitor, ChangeListener, StillListener
from media.fastpath import FastPath
from media.forwarder import SlotTrack
from media.frames import EncodedFrame
from media.recorder import (
    DEFAULT_SEGMENT_S,
    SUPPORTED_CODECS,
    RecordingResult,
    Segment,
    TrackRecorder,
)
from media.sdp import SdpError, check_offer
from media.sendworker import SendWorkers
from media.tap import SsrcGuard, TapUnavailable, install_level_tap, install_tap
from media.udpread import read_in_batches

log = logging.getLogger(__name__)

# The server's connections must not be cut for answers that come late (media.consent).
consent.install()

FrameListener = Callable[[str, EncodedFrame], None]
LevelListener = Callable[[str, int], None]  # track key, audio level in -dBov


@dataclass(frozen=True)
class Slot:
    """An m-line the client only receives on: the server sends it others' media.

    ``kind`` is ``audio``, ``video`` (a camera) or ``screen`` (someone's shared screen,
    a video track too)."""

    mid: str
    kind: str
    track: SlotTrack


StateListener = Callable[[str], None]

# Each peer's UDP socket may receive bursts (key frames from a publisher, RTCP from many
# subscribers) while the event loop is busy forwarding; the default buffer (~200 KiB)
# then overflows and the server loses whole frames. The kernel caps this at
# net.core.rmem_max.
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024

# The recording source of each published track label.
SOURCE_OF_KEY = {"audio": "microphone", "video": "camera", "screen": "screen"}


def _codec_name(codec: RTCRtpCodecParameters) -> str:
    return str(codec.mimeType).split("/")[-1].lower()


def _restrict_codecs(transceiver: RTCRtpTransceiver) -> None:
    """Negotiate only the codecs hoidong records (and their retransmission).

    aiortc settles a transceiver's codecs inside ``setRemoteDescription``, before
    ``setCodecPreferences`` could apply, so the negotiated list (aiortc's
    ``_codecs``, pinned version) is narrowed here, before the answer is made.
    """
    kept = [c for c in transceiver._codecs if _codec_name(c) in SUPPORTED_CODECS]
    payload_types = {c.payloadType for c in kept}
    rtx = [
        c for c in transceiver._codecs
        if _codec_name(c) == "rtx" and int(str(c.parameters.get("apt", -1))) in payload_types
    ]
    transceiver._codecs = kept + rtx


class ParticipantPeer:
    def __init__(
        self,
        spool_dir: Path,
        *,
        ice_servers: list[RTCIceServer] | None = None,
        on_frame: FrameListener | None = None,
        on_state: StateListener | None = None,
        on_level: LevelListener | None = None,
        fast_forwarding: bool = True,
        send_workers: SendWorkers | None = None,
        on_camera: ChangeListener | None = None,
        camera_config: CameraConfig | None = None,
        on_still: StillListener | None = None,
        segment_s: float = DEFAULT_SEGMENT_S,
        on_segment: Callable[[str, Segment], None] | None = None,
    ) -> None:
        self.spool_dir = spool_dir
        # max-bundle: every m-line on one transport. With aiortc's default (balanced), a
        # second transceiver of a kind is created on the first one's transport, the
        # BUNDLE step then skips it, and it is answered with no candidates (port 9).
        self.pc = RTCPeerConnection(RTCConfiguration(
            iceServers=ice_servers or [], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        ))
        self._recorders: dict[str, TrackRecorder] = {}
        self._on_frame = on_frame
        self._on_state = on_state
        self._on_level = on_level
        self._fast = fast_forwarding
        self._workers = send_workers
        self._on_camera = on_camera
        self._camera_config = camera_config
        self._on_still = on_still
        self._segment_s = segment_s
        self._on_segment = on_segment
        self._camera_key: str | None = None
        self.camera: CameraMonitor | None = None
        self._closed = False
        self._answered = False
        self._results: list[RecordingResult] = []
        self._receivers: dict[str, RTCRtpReceiver] = {}
        self.slots: list[Slot] = []
        self.ssrc_guard: SsrcGuard | None = None

        @self.pc.on("connectionstatechange")
        def _state_changed() -> None:
            if self._on_state is not None:
                self._on_state(self.pc.connectionState)

    @property
    def published(self) -> dict[str, str]:
        """The tracks this participant sends: key (``label-mid``) → label, where the
        label is ``audio``, ``video`` (camera) or ``screen``."""
        return {key: key.split("-", 1)[0] for key in self._receivers}

    def request_keyframe(self, key: str) -> None:
        """Send a PLI for the published video track ``key`` (no-op for others)."""
        receiver = self._receivers.get(key)
        if receiver is None or self._closed or key.startswith("audio"):
            return
        for source in receiver.getSynchronizationSources():
            asyncio.get_running_loop().create_task(receiver._send_rtcp_pli(source.source))

    async def answer(self, offer_sdp: object, *, screen_send: str | None = None,
                     screen_receive: frozenset[str] = frozenset()) -> str:
        """Accept the participant's offer and return the answer SDP.

        ``screen_send`` is the mid of the client's video m-line that carries its shared
        screen (silent until it shares), ``screen_receive`` those on which it receives
        others' screens; other video m-lines are cameras.

        Raises :class:`SdpError` for an offer that is malformed, too large, carries
        no supported codec, or comes a second time (renegotiation is not supported
        yet: the participant reconnects instead).
        """
        if self._answered or self._closed:
            raise SdpError("sdp.unexpected")
        parsed = check_offer(offer_sdp)
        assert isinstance(offer_sdp, str)
        # What the client does on each m-line: sends (it publishes) or only receives
        # (a slot the server fills with other participants' media).
        client_sends = {
            m.rtp.muxId: m.direction in ("sendrecv", "sendonly") for m in parsed.media
        }
        self._answered = True
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        except Exception:
            # Parsed, but aiortc still refused it (e.g. no DTLS fingerprint, bad ICE).
            raise SdpError("sdp.rejected") from None
        for transceiver in self.pc.getTransceivers():
            kind = transceiver.kind
            if kind not in ("audio", "video"):
                continue
            _restrict_codecs(transceiver)
            mid = str(transceiver.mid)
            is_screen = kind == "video" and (mid == screen_send or mid in screen_receive)
            if client_sends.get(mid, False):
                key = f"{'screen' if is_screen else kind}-{mid}"
                self._receivers[key] = transceiver.receiver
                install_tap(transceiver.receiver, kind, self._sink_for(key))
                if kind == "audio" and self._on_level is not None:
                    install_level_tap(transceiver.receiver, self._level_sink(key))
            else:
                slot = SlotTrack(
                    kind,
                    fast=FastPath(transceiver, kind, self._workers) if self._fast else None,
                )
                transceiver.direction = "sendonly"
                transceiver.sender.replaceTrack(slot)
                # aiortc turns a subscriber's PLI/FIR into _send_keyframe(), which only an
                # encoder would honour; passthrough asks the publisher instead.
                transceiver.sender._send_keyframe = slot.request_keyframe  # type: ignore[method-assign]
                self.slots.append(Slot(mid, "screen" if is_screen else kind, slot))
        try:
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
        except Exception:
            raise SdpError("sdp.no_supported_codec") from None
        self._tune_sockets()
        self._guard_sources()
        self._watch_camera()
        local = self.pc.localDescription
        assert local is not None
        return str(local.sdp)

    def _watch_camera(self) -> None:
        """Start the server-side camera check on the camera track (not the screen)."""
        if self._on_camera is None:
            return
        key = next((k for k in self._receivers if k.startswith("video-")), None)
        self._camera_key = key
        self.camera = CameraMonitor(
            request_keyframe=(lambda: self.request_keyframe(key)) if key else (lambda: None),
            on_change=self._on_camera, has_video=key is not None,
            config=self._camera_config, on_still=self._on_still,
        )
        self.camera.start()

    def _guard_sources(self) -> None:
        """At most a media and a retransmission SSRC per track, with room for a change
        of source or two (see :class:`~media.tap.SsrcGuard`)."""
        transceivers = self.pc.getTransceivers()
        if not transceivers:
            return
        try:
            self.ssrc_guard = SsrcGuard(transceivers[0].receiver.transport,
                                        2 * len(self._receivers) + 4, str(self.spool_dir))
        except TapUnavailable:
            log.warning("cannot cap RTP sources on this aiortc version")

    def _tune_sockets(self) -> None:
        """Give this connection's UDP sockets (aioice's, gathered by now) more room, and
        read each in batches (:mod:`media.udpread`: one datagram per loop turn falls
        behind a participant's media when the loop is busy)."""
        seen: set[int] = set()
        for transceiver in self.pc.getTransceivers():
            try:
                protocols = transceiver.receiver.transport.transport._connection._protocols
            except AttributeError:  # aiortc/aioice internals moved: keep the defaults
                return
            for protocol in protocols:
                sock = protocol.transport.get_extra_info("socket") if protocol.transport else None
                if sock is None or sock.fileno() in seen:
                    continue
                seen.add(sock.fileno())
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
                except OSError:
                    log.warning("could not enlarge a UDP receive buffer", exc_info=True)
                if not read_in_batches(protocol.transport):
                    log.warning("UDP socket left to asyncio's one-datagram reader")

    def _level_sink(self, key: str) -> Callable[[int], None]:
        on_level = self._on_level
        assert on_level is not None
        return lambda level: on_level(key, level)

    def _sink_for(self, key: str) -> Callable[[EncodedFrame], None]:
        def sink(frame: EncodedFrame) -> None:
            recorder = self._recorders.get(key)
            if recorder is None:
                if self._closed or frame.codec not in SUPPORTED_CODECS:
                    return
                path = self.spool_dir / f"{key}.webm"
                on_segment = self._on_segment
                recorder = self._recorders[key] = TrackRecorder(
                    frame.kind, frame.codec, path, source=SOURCE_OF_KEY[key.split("-", 1)[0]],
                    segment_s=self._segment_s,
                    on_segment=None if on_segment is None else (
                        lambda segment: on_segment(key, segment)),
                    request_keyframe=lambda: self.request_keyframe(key),
                )
            recorder.write(frame)
            if key == self._camera_key and self.camera is not None:
                self.camera.frame(frame)
            if self._on_frame is not None:
                self._on_frame(key, frame)
        return sink

    async def close(self) -> list[RecordingResult]:
        """Close the connection and finish every recording (idempotent)."""
        if self._closed:
            return self._results
        self._closed = True
        if self.camera is not None:
            await self.camera.close()
        for slot in self.slots:
            if slot.track.fast is not None:
                slot.track.fast.close()
        try:
            await asyncio.wait_for(self.pc.close(), timeout=10)
        except Exception:
            log.exception("closing a peer connection failed; recordings are finished anyway")
        self._results = list(
            await asyncio.gather(*(r.close() for r in self._recorders.values()))
        )
        return self._results
