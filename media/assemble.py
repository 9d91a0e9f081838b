"""Put a track's segments back together: one continuous WebM, without re-encoding.

:func:`assemble` remuxes the packets of each segment file into one file, each segment
placed at its offset on the track's timeline — a gap between segments (a mute, a
reconnect, loss) stays a gap in the timestamps, it is not closed up. A segment that is
missing, truncated or corrupt is skipped (what could be read of a truncated one is kept)
and reported, never raised: the assembler must not fail on damaged evidence, and the
report says exactly what was left out.

Blocking (file I/O and muxing): run it in a worker process or thread.
"""

from __future__ import annotations

import fractions
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Piece:
    """A segment file and where it starts on the track's timeline (seconds)."""

    path: Path
    offset_s: float


@dataclass
class Assembly:
    """What :func:`assemble` made: ``packets`` written, ``duration_s`` of the result,
    the segments ``used`` and ``skipped`` (path → reason), ``truncated`` ones (kept in
    part). ``out`` exists only if ``packets`` > 0."""

    out: Path
    packets: int = 0
    duration_s: float = 0.0
    used: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    truncated: list[str] = field(default_factory=list)


def assemble(pieces: Sequence[Piece], out: Path, *, container: str = "webm") -> Assembly:
    """Remux ``pieces`` (in timeline order) into ``out`` (see the module doc)."""
    report = Assembly(out)
    output: Any = None
    stream: Any = None
    last_pts = -1
    time_base: fractions.Fraction | None = None
    try:
        for piece in pieces:
            name = piece.path.name
            try:
                source = av.open(str(piece.path), "r")
            except (av.FFmpegError, OSError, ValueError) as exc:
                report.skipped[name] = _why(exc)
                continue
            try:
                if not source.streams:
                    report.skipped[name] = "no stream"
                    continue
                in_stream = source.streams[0]
                if output is None:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    output = av.open(str(out), "w", format=container)
                    stream = output.add_stream_from_template(in_stream)
                    time_base = in_stream.time_base
                assert time_base is not None and in_stream.time_base is not None
                scale = in_stream.time_base / time_base  # 1 in WebM (1/1000 everywhere)
                offset = round(piece.offset_s / time_base)
                written = 0
                try:
                    for packet in source.demux(in_stream):
                        if packet.dts is None or packet.size == 0:
                            continue  # the demuxer's end-of-stream marker
                        pts = packet.pts if packet.pts is not None else packet.dts
                        ts = max(round(pts * scale) + offset, last_pts + 1)
                        packet.stream = stream
                        packet.pts = packet.dts = ts
                        packet.time_base = time_base
                        output.mux(packet)
                        last_pts = ts
                        written += 1
                except (av.FFmpegError, ValueError) as exc:
                    report.truncated.append(name)
                    log.warning("segment %s is damaged after %d packets: %s", name, written,
                                _why(exc))
                if written:
                    report.used.append(name)
                    report.packets += written
                elif name not in report.truncated:
                    report.skipped[name] = "empty"
                else:
                    report.truncated.remove(name)
                    report.skipped[name] = "unreadable"
            finally:
                source.close()
    finally:
        if output is not None:
            output.close()
    if report.packets and time_base is not None:
        report.duration_s = round(float(last_pts * time_base), 3)
    elif out.exists():
        out.unlink()
    return report


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
