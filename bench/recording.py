"""Recording benchmark: CPU per recorded participant, hoidong vs aiortc's MediaRecorder.

One participant's camera (VP8 640×480 ~500 kbps 30 fps) and microphone (Opus 20 ms) from
the media fixture, ``--seconds`` of media fed as fast as it goes, through:

- **hoidong**: ``media.recorder.TrackRecorder`` per track — encoded frames muxed into
  WebM segments of 10 s, no decoding, no encoding (what the server does);
- **mediarecorder_webm** / **mediarecorder_mp4**: aiortc's ``MediaRecorder`` to WebM
  (VP8/Opus) and to MP4 (H.264/AAC). It takes decoded frames and encodes them; the frames
  are decoded before the clock starts, so the baseline is *not* charged for decoding
  (which a server using it would also pay).

CPU is this process's CPU time (all threads) per second of media, as % of one core;
``--repeat`` runs, medians. Also: bytes written / bytes received (hoidong), and the
composite (``media.composite``, two participants) built from assembled files, as ×
real time (media seconds per wall second).

    python -m bench.recording [--seconds 20] [--repeat 3]

Writes bench/results/recording.json: {cpu_pct_per_participant, mediarecorder_webm_cpu_pct,
mediarecorder_mp4_cpu_pct, composite_x_realtime, bytes_written_over_received, ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import statistics
import tempfile
import time
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import av
from aiortc.contrib.media import MediaRecorder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench import media_fixture
from media.assemble import Piece, assemble
from media.composite import Person, Track, composite_args, run_composite
from media.frames import EncodedFrame
from media.recorder import TrackRecorder

RESULTS = Path(__file__).parent / "results" / "recording.json"
FPS = 30
AUDIO_FRAME_S = 0.02


def cpu() -> float:
    return time.process_time()


def encoded_frames(seconds: float) -> tuple[list[EncodedFrame], list[EncodedFrame], int]:
    """The fixture's frames for ``seconds`` of media, stamped as received; total bytes."""
    fx = media_fixture.load()
    t0 = time.time()
    video = [EncodedFrame(kind="video", codec="vp8", data=fx["video"][i % len(fx["video"])],
                          rtp_timestamp=i * 3000, clock_rate=90000,
                          received_at=t0 + i / FPS) for i in range(int(seconds * FPS))]
    audio = [EncodedFrame(kind="audio", codec="opus", data=fx["audio"][i % len(fx["audio"])],
                          rtp_timestamp=i * 960, clock_rate=48000,
                          received_at=t0 + i * AUDIO_FRAME_S)
             for i in range(int(seconds / AUDIO_FRAME_S))]
    return video, audio, sum(len(f.data) for f in video + audio)


async def run_hoidong(video: list[EncodedFrame], audio: list[EncodedFrame], folder: Path
                      ) -> tuple[float, int, list[Path]]:
    """CPU seconds, bytes written, segment files (video then audio)."""
    start = cpu()
    recorders = [TrackRecorder("video", "vp8", folder / "video-1.webm"),
                 TrackRecorder("audio", "opus", folder / "audio-0.webm")]
    merged = sorted([(f.received_at, 0, f) for f in video] + [(f.received_at, 1, f)
                                                               for f in audio],
                    key=lambda x: (x[0], x[1]))
    for n, (_, which, frame) in enumerate(merged):
        recorders[which].write(frame)
        if n % 200 == 0:
            await asyncio.sleep(0)  # let the writer threads drain (bounded queues)
    results = [await r.close() for r in recorders]
    used = cpu() - start
    segments = [s.path for r in results for s in r.segments]
    return used, sum(p.stat().st_size for p in segments), segments


class FrameTrack(MediaStreamTrack):
    """Replays decoded frames as fast as they are asked for."""

    def __init__(self, kind: str, frames: list[Any]) -> None:
        super().__init__()
        self.kind = kind
        self._frames = iter(frames)

    async def recv(self) -> Any:
        try:
            return next(self._frames)
        except StopIteration:
            self.stop()
            raise MediaStreamError from None


def decoded(fx: dict[str, list[bytes]], seconds: float) -> tuple[list[Any], list[Any]]:
    vdec, adec = av.CodecContext.create("vp8", "r"), av.CodecContext.create("opus", "r")
    video, audio = [], []
    for i in range(int(seconds * FPS)):
        for frame in vdec.decode(av.Packet(fx["video"][i % len(fx["video"])])):
            frame.pts, frame.time_base = i * 3000, fractions.Fraction(1, 90000)
            video.append(frame)
    for i in range(int(seconds / AUDIO_FRAME_S)):
        for frame in adec.decode(av.Packet(fx["audio"][i % len(fx["audio"])])):
            frame.pts, frame.time_base = i * 960, fractions.Fraction(1, 48000)
            audio.append(frame)
    return video, audio


async def run_mediarecorder(video: list[Any], audio: list[Any], out: Path) -> float:
    start = cpu()
    rec = MediaRecorder(str(out))
    vt, at = FrameTrack("video", video), FrameTrack("audio", audio)
    rec.addTrack(vt)
    rec.addTrack(at)
    await rec.start()
    while vt.readyState == "live" or at.readyState == "live":
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    await rec.stop()
    return cpu() - start


def composite_speed(segments: list[Path], seconds: float, folder: Path) -> float:
    """Media seconds per wall second for a two-person composite of ``segments``."""
    v = [p for p in segments if p.name.startswith("video")]
    a = [p for p in segments if p.name.startswith("audio")]
    people = []
    for n, name in enumerate(("Nguyễn Văn An", "Trần Thị Bình")):
        vfile, afile = folder / f"p{n}-video.webm", folder / f"p{n}-audio.webm"
        assemble([Piece(p, 10.0 * k) for k, p in enumerate(v)], vfile)
        assemble([Piece(p, 10.0 * k) for k, p in enumerate(a)], afile)
        people.append(Person(name, [Track(vfile, "video", 0.0), Track(afile, "audio", 0.0)]))
    with as_file(files("font_roboto") / "files" / "Roboto-Regular.ttf") as font:
        args = composite_args(people, folder / "composite.webm", length_s=seconds,
                              start_epoch=time.time(), font=font)
        start = time.monotonic()
        run_composite(args, seconds)
    return seconds / (time.monotonic() - start)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    fx = media_fixture.load()
    hoidong, webm, mp4, ratio, speeds = [], [], [], 0.0, []
    dec_video, dec_audio = decoded(fx, args.seconds)
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            video, audio, received = encoded_frames(args.seconds)
            used, written, segments = await run_hoidong(video, audio, folder)
            hoidong.append(100 * used / args.seconds)
            ratio = written / received
            webm.append(100 * await run_mediarecorder(dec_video, dec_audio,
                                                      folder / "mr.webm") / args.seconds)
            mp4.append(100 * await run_mediarecorder(dec_video, dec_audio,
                                                     folder / "mr.mp4") / args.seconds)
            speeds.append(composite_speed(segments, args.seconds, folder))
    return {
        "cpu_pct_per_participant": round(statistics.median(hoidong), 3),
        "mediarecorder_webm_cpu_pct": round(statistics.median(webm), 2),
        "mediarecorder_mp4_cpu_pct": round(statistics.median(mp4), 2),
        "composite_x_realtime": round(statistics.median(speeds), 2),
        "bytes_written_over_received": round(ratio, 4),
        "media_seconds_per_run": args.seconds, "runs": args.repeat,
        "hoidong_runs_pct": [round(x, 3) for x in hoidong],
        "mediarecorder_webm_runs_pct": [round(x, 2) for x in webm],
        "mediarecorder_mp4_runs_pct": [round(x, 2) for x in mp4],
        "composite_runs_x": [round(x, 2) for x in speeds],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="media seconds per run")
    ap.add_argument("--repeat", type=int, default=3)
    result = asyncio.run(main_async(ap.parse_args()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print("| method | CPU % of a core per participant (audio + video, median) |")
    print("|---|---|")
    print(f"| hoidong (encoded frames to WebM segments) | {result['cpu_pct_per_participant']} |")
    print(f"| aiortc MediaRecorder to WebM (VP8/Opus) | {result['mediarecorder_webm_cpu_pct']} |")
    print(f"| aiortc MediaRecorder to MP4 (H.264/AAC) | {result['mediarecorder_mp4_cpu_pct']} |")
    print(f"bytes written / received: {result['bytes_written_over_received']}; composite "
          f"(2 people): {result['composite_x_realtime']}x real time; target: hoidong <= 2 %")


if __name__ == "__main__":
    main()
