"""Camera check benchmark: CPU per monitored participant vs decoding every frame.

One participant's camera at 640×480, 30 fps, ~500 kbps (the media benchmark's pre-encoded
VP8 fixture) is replayed for ``--seconds`` of media time, as fast as it goes, through:

- **monitor**: what the server does (``media.camera_monitor``): note every frame
  (``CameraState.frame``), and every ``--sample`` seconds analyse one key frame
  (``media.camera.analyse_keyframe``: decode it alone, reduce to 64×48 grey, check it);
- **monitor_face**: the same with the optional face check (``HOIDONG_CAMERA_FACE_CHECK``:
  OpenCV's Haar cascade on each sample, 213×160 grey);
- **full_decode**: the usual way — decode every frame with one VP8 decoder and look at
  each picture (reduce to the same grey image).

CPU is this process's own CPU time (user + system) per run; the figure is CPU seconds per
second of media, as a percentage of one core. Repeated ``--repeat`` times; medians.

    python -m bench.camera [--seconds 60] [--sample 3] [--repeat 5]

Writes bench/results/camera.json: {cpu_pct_per_participant, full_decode_cpu_pct, ...}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import av

from bench import media_fixture
from media.camera import SAMPLE_SIZE, CameraState, analyse_keyframe
from media.face import FaceDetector
from media.vp8 import is_keyframe

RESULTS = Path(__file__).parent / "results" / "camera.json"
FPS = 30


def cpu() -> float:
    return time.process_time()


def run_monitor(frames: list[bytes], seconds: float, sample_s: float,
                faces: FaceDetector | None = None) -> tuple[float, int]:
    state = CameraState(0.0)
    samples = 0
    next_sample = 0.0
    start = cpu()
    n = int(seconds * FPS)
    for i in range(n):
        t = i / FPS
        data = frames[i % len(frames)]
        state.frame(t)
        if t >= next_sample and is_keyframe(data):
            state.sample(t, analyse_keyframe(data, faces=faces))
            samples += 1
            next_sample = t + sample_s
        state.update(t)
    return cpu() - start, samples


def run_full_decode(frames: list[bytes], seconds: float) -> float:
    codec = av.CodecContext.create("vp8", "r")
    start = cpu()
    for i in range(int(seconds * FPS)):
        for frame in codec.decode(av.Packet(frames[i % len(frames)])):
            frame.reformat(width=SAMPLE_SIZE[0], height=SAMPLE_SIZE[1], format="gray")
    return cpu() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="media seconds per run")
    ap.add_argument("--sample", type=float, default=3.0, help="seconds between samples")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    frames = media_fixture.load()["video"]
    monitor, face, full, samples = [], [], [], 0
    detector = FaceDetector()
    for _ in range(args.repeat):
        cpu_s, samples = run_monitor(frames, args.seconds, args.sample)
        monitor.append(100 * cpu_s / args.seconds)
        cpu_s, _ = run_monitor(frames, args.seconds, args.sample, detector)
        face.append(100 * cpu_s / args.seconds)
        full.append(100 * run_full_decode(frames, args.seconds) / args.seconds)
    result: dict[str, Any] = {
        "cpu_pct_per_participant": round(statistics.median(monitor), 4),
        "full_decode_cpu_pct": round(statistics.median(full), 3),
        "face_check_cpu_pct": round(statistics.median(face), 4),
        "ratio_full_over_monitor": round(statistics.median(full) / statistics.median(monitor), 1),
        "samples_per_run": samples,
        "media_seconds_per_run": args.seconds,
        "sample_every_s": args.sample,
        "runs": args.repeat,
        "monitor_runs_pct": [round(x, 4) for x in monitor],
        "face_check_runs_pct": [round(x, 4) for x in face],
        "full_decode_runs_pct": [round(x, 3) for x in full],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print("| method | CPU % of a core per participant (median) |")
    print("|---|---|")
    monitor_pct = result["cpu_pct_per_participant"]
    print(f"| monitor (a key frame every {args.sample:g} s) | {monitor_pct} |")
    print(f"| monitor + face check | {result['face_check_cpu_pct']} |")
    print(f"| full decode (every frame) | {result['full_decode_cpu_pct']} |")
    print(f"full decode / monitor: {result['ratio_full_over_monitor']}x;"
          " target: monitor <= 0.3 % of a core")


if __name__ == "__main__":
    main()
