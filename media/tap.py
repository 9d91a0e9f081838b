"""Take encoded frames from an aiortc receiver before its decoder thread sees them.

aiortc's ``RTCRtpReceiver`` reassembles frames in its jitter buffer and hands each
``(codec, JitterFrame)`` to a decoder thread through a private queue. hoidong never
needs decoded media to record or forward, so :func:`install_tap` replaces that queue
with one that passes each encoded frame to a sink on the event loop instead. The
decoder thread still starts, finds nothing to decode, and ends when the receiver
stops (its ``None`` sentinel is passed through), which also ends the remote track.

This reaches into aiortc internals: the aiortc version is pinned in pyproject.toml and
``tests/test_media_tap.py`` checks the hook against the real receiver.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpReceiver

from media.frames import EncodedFrame

log = logging.getLogger(__name__)

FrameSink = Callable[[EncodedFrame], None]

_QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"
_THREAD_ATTR = "_RTCRtpReceiver__decoder_thread"


class TapUnavailable(RuntimeError):
    """The installed aiortc does not look as this module expects."""


class _TapQueue:
    """Stands in for the decoder queue: frames go to the sink, the stop sentinel on."""

    def __init__(self, inner: queue.Queue[Any], kind: str, sink: FrameSink) -> None:
        self._inner = inner
        self._kind = kind
        self._sink = sink

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            self._inner.put(None)
            return
        codec, jitter_frame = item
        frame = EncodedFrame(
            kind=self._kind,
            codec=codec.name.lower(),
            data=jitter_frame.data,
            rtp_timestamp=jitter_frame.timestamp,
            clock_rate=codec.clockRate,
            received_at=time.time(),
        )
        try:
            self._sink(frame)
        except Exception:
            # One bad consumer must not take down the receiver (and so the peer).
            log.exception("frame sink failed for a %s frame", self._kind)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self._inner.get(block, timeout)


def install_tap(receiver: RTCRtpReceiver, kind: str, sink: FrameSink) -> None:
    """Route ``receiver``'s encoded frames to ``sink`` (called on the event loop).

    Must be called before the receiver starts (i.e. right after
    ``setRemoteDescription``); raises :class:`TapUnavailable` otherwise or when
    aiortc's internals have changed.
    """
    inner = getattr(receiver, _QUEUE_ATTR, None)
    if isinstance(inner, _TapQueue):
        raise TapUnavailable("a tap is already installed on this receiver")
    if not isinstance(inner, queue.Queue) or not hasattr(receiver, _THREAD_ATTR):
        raise TapUnavailable("aiortc's RTCRtpReceiver internals are not as expected")
    if getattr(receiver, _THREAD_ATTR) is not None:
        raise TapUnavailable("the receiver has already started decoding")
    setattr(receiver, _QUEUE_ATTR, _TapQueue(inner, kind, sink))


LevelSink = Callable[[int], None]


def install_level_tap(receiver: RTCRtpReceiver, sink: LevelSink) -> None:
    """Pass the RFC 6464 audio level of each RTP packet ``receiver`` gets to ``sink``.

    The level is in -dBov (0 = loudest, 127 = silence), as the sender measured it
    (browsers send it on every audio packet; aiortc negotiates the extension). Packets
    without it are not reported. Wraps aiortc's ``_handle_rtp_packet`` on this one
    receiver (pinned aiortc version; see the tests).
    """
    handle = getattr(receiver, "_handle_rtp_packet", None)
    if handle is None or getattr(handle, "_hoidong_level_tap", False):
        raise TapUnavailable("cannot tap audio levels on this receiver")

    async def handle_with_level(packet: Any, arrival_time_ms: int) -> None:
        level = packet.extensions.audio_level
        if level is not None:
            try:
                sink(level[1])
            except Exception:
                log.exception("audio level sink failed")
        await handle(packet, arrival_time_ms=arrival_time_ms)

    handle_with_level._hoidong_level_tap = True  # type: ignore[attr-defined]
    receiver._handle_rtp_packet = handle_with_level  # type: ignore[method-assign]


class SsrcGuard:
    """Caps how many RTP sources (SSRCs) one connection may introduce.

    aiortc's RTP router learns every new SSRC whose payload type matches a receiver, and
    the receiver keeps statistics for each: a client sending RTP with random SSRCs would
    grow both without end (and once over 31 sources, aiortc's receiver reports fail).
    Beyond ``limit`` SSRCs, packets from new ones are dropped and counted; the first
    drop is logged.
    """

    def __init__(self, dtls: Any, limit: int, name: str) -> None:
        router = getattr(dtls, "_rtp_router", None)
        route = getattr(router, "route_rtp", None)
        if router is None or route is None or not isinstance(router.ssrc_table, dict):
            raise TapUnavailable("aiortc's RTP router is not as expected")
        self.limit = limit
        self.dropped = 0
        self._name = name
        table: dict[int, Any] = router.ssrc_table

        def guarded(packet: Any) -> Any:
            if packet.ssrc not in table and len(table) >= self.limit:
                if not self.dropped:
                    log.warning("%s: RTP from more than %d sources; packets from new ones "
                                "are dropped", self._name, self.limit)
                self.dropped += 1
                return None
            return route(packet)

        router.route_rtp = guarded
