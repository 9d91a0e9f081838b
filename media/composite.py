"""The session composite: everyone's audio mixed, the members' video in a grid with
names and the time, on the session's one timeline — one browser-playable WebM.

:func:`composite_args` builds the ffmpeg command line with ffmpeg-python: each
participant's continuous files (assembled from segments, timestamps from the session's
start) enter at their offset (``-itsoffset``); video is scaled into a tile of the grid
over a black background as long as the session and overlaid where it has frames, with
the participant's name; audio is resampled with gaps filled by silence
(``aresample=async``) and mixed (``amix``, no normalisation, so one voice is not turned
down because others are silent). The time of day (Vietnam time) is drawn at the top.
Output: WebM, VP8 (realtime preset) and Opus.

:func:`run_composite` runs ffmpeg (its own process: the server's cores are not its) and
reports progress from ffmpeg's ``-progress`` output. Blocking: call it from a worker.
"""

from __future__ import annotations

import logging
import math
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from media.ffmpeg import ffmpeg_path

log = logging.getLogger(__name__)

TILE = (320, 240)
FPS = 15
VN_OFFSET_S = 7 * 3600


@dataclass(frozen=True)
class Track:
    """One continuous file of one participant; ``offset_s`` from the session's start."""

    path: Path
    kind: str  # audio | video
    offset_s: float


@dataclass(frozen=True)
class Person:
    name: str
    tracks: Sequence[Track]


def grid(n: int) -> tuple[int, int]:
    """(columns, rows) for ``n`` tiles: as square as it gets."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return cols, max(1, math.ceil(n / cols))


def composite_args(people: Sequence[Person], out: Path, *, length_s: float,
                   start_epoch: float, font: Path) -> list[str]:
    """The ffmpeg arguments (without the executable) for the composite of ``people``;
    writes the clock's text file next to ``out`` (blocking, small)."""
    videos = [(p, t) for p in people for t in p.tracks if t.kind == "video"]
    audios = [t for p in people for t in p.tracks if t.kind == "audio"]
    tiles = [p for p in people if any(t.kind == "video" for t in p.tracks)] or list(people)
    cols, rows = grid(len(tiles))
    width, height = cols * TILE[0], rows * TILE[1] + 40
    length = f"{max(length_s, 0.1):.3f}"
    base = ffmpeg.input(f"color=c=black:s={width}x{height}:r={FPS}:d={length}", f="lavfi")
    canvas = base.video
    for p, track in videos:
        k = tiles.index(p)
        x, y = (k % cols) * TILE[0], (k // cols) * TILE[1] + 40
        clip = ffmpeg.input(str(track.path), itsoffset=f"{track.offset_s:.3f}").video
        clip = clip.filter("scale", TILE[0], TILE[1], force_original_aspect_ratio="decrease")
        clip = clip.filter("pad", TILE[0], TILE[1], "(ow-iw)/2", "(oh-ih)/2")
        canvas = ffmpeg.overlay(canvas, clip, x=x, y=y, eof_action="pass")
    for k, p in enumerate(tiles):
        x, y = (k % cols) * TILE[0], (k // cols) * TILE[1] + 40
        canvas = canvas.drawtext(text=p.name, fontfile=str(font), fontsize=16,
                                 fontcolor="white", box=1, boxcolor="black@0.6",
                                 x=x + 6, y=y + TILE[1] - 26)
    # The clock goes through a text file: drawtext expands it there, and no filtergraph
    # escaping stands between its colons and ffmpeg.
    clock = out.with_name(out.name + ".clock.txt")
    clock.write_text(f"%{{pts:gmtime:{start_epoch + VN_OFFSET_S:.0f}:%d/%m/%Y %H\\:%M\\:%S}}"
                     " (UTC+7)", encoding="utf-8")
    canvas = canvas.drawtext(textfile=str(clock), fontfile=str(font), fontsize=18,
                             fontcolor="white", x=8, y=10)
    streams: list[Any] = [canvas]
    if audios:
        parts = []
        for track in audios:
            a = ffmpeg.input(str(track.path), itsoffset=f"{track.offset_s:.3f}").audio
            parts.append(a.filter("aresample", 48000, **{"async": 1, "first_pts": 0}))
        mixed = (parts[0] if len(parts) == 1 else
                 ffmpeg.filter(parts, "amix", inputs=len(parts), duration="longest",
                               normalize=0))
        streams.append(mixed.filter("atrim", end=length))
    output = ffmpeg.output(
        *streams, str(out), format="webm", t=length, vcodec="libvpx", acodec="libopus",
        deadline="realtime", **{"cpu-used": 8, "b:v": "600k", "b:a": "64k"},
        r=FPS, pix_fmt="yuv420p")
    args: list[str] = output.overwrite_output().global_args(
        "-hide_banner", "-nostats", "-loglevel", "error", "-progress", "pipe:1").get_args()
    return args


def run_composite(args: Sequence[str], length_s: float,
                  on_progress: Callable[[float], None] | None = None) -> None:
    """Run ffmpeg with ``args``; ``on_progress`` gets 0..1 as it goes. Raises
    :class:`CompositeError` with ffmpeg's message if it fails (blocking)."""
    proc = subprocess.Popen([ffmpeg_path(), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    for line in proc.stdout:
        key, _, value = line.strip().partition("=")
        if key == "out_time_us" and value.isdigit() and on_progress is not None:
            on_progress(min(1.0, int(value) / 1e6 / max(length_s, 0.1)))
    errors = proc.stderr.read()
    if proc.wait() != 0:
        raise CompositeError(errors.strip()[-2000:] or f"ffmpeg exited {proc.returncode}")
    if on_progress is not None:
        on_progress(1.0)


class CompositeError(Exception):
    """ffmpeg could not make the composite; the message is ffmpeg's."""
