"""The soak's judgement of a track's segments (bench/soak.py, ``track_timeline``): what
counts as a lost segment and what is only a long segment or a network gap; and how it
keeps the server log's errors by kind (``log_error_kinds``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.soak import log_error_kinds, track_timeline


def segs(*spans: tuple[int, float, float]) -> list[dict[str, Any]]:
    return [{"seq": seq, "offset_s": off, "duration_s": dur} for seq, off, dur in spans]


def test_long_video_segments_cover_the_track() -> None:
    # Key frames came late: 3 segments for 40 s, none missing.
    t = track_timeline(segs((0, 0.0, 10.0), (1, 10.0, 18.5), (2, 28.5, 11.5)), 40.0, 10.0)
    assert t["uncovered_s"] == 0 and t["ends_uncovered_s"] == 0 and t["gaps_s"] == []
    assert t["longest_s"] == 18.5
    assert t["segments_per_segment_s"] == 0.75


def test_a_missing_last_segment_leaves_the_tail_uncovered() -> None:
    t = track_timeline(segs((0, 0.0, 10.0), (1, 10.0, 10.0)), 30.0, 10.0)
    assert t["ends_uncovered_s"] == 10.0 and t["uncovered_s"] == 10.0


def test_a_missing_middle_segment_is_uncovered_but_not_an_end() -> None:
    t = track_timeline(segs((0, 0.0, 10.0), (2, 20.0, 10.0)), 30.0, 10.0)
    assert t["uncovered_s"] == 10.0 and t["ends_uncovered_s"] == 0
    assert t["gaps_s"] == []


def test_time_without_frames_between_consecutive_segments_is_a_gap() -> None:
    t = track_timeline(segs((0, 0.0, 10.0), (1, 25.0, 10.0)), 35.0, 10.0)
    assert t["uncovered_s"] == 0 and t["gaps_s"] == [15.0]


def test_small_slack_is_not_counted() -> None:
    t = track_timeline(segs((0, 0.4, 9.9), (1, 10.9, 9.0)), 20.5, 10.0)
    assert t["uncovered_s"] == 0 and t["gaps_s"] == []


def test_the_server_logs_errors_are_kept_by_kind(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(
        "2026-12-07 00:11:19,156 ERROR server.camera_rule: camera rule round of session "
        "952ef738d15c4c54837f7d6835081c67 failed\nTraceback (most recent call last):\n"
        '  File "x", line 1\nsqlite3.OperationalError: database is locked\n'
        "2026-12-07 00:13:03,429 ERROR server.camera_rule: camera rule round of session "
        "052ef738d15c4c54837f7d6835081c67 failed\nTraceback (most recent call last):\n"
        "sqlite3.OperationalError: database is locked\n"
        "2026-12-07 00:13:04,000 INFO server.live: joined\n"
        "2026-12-07 00:14:03,429 ERROR aiohttp.server: Error handling request\n")
    assert log_error_kinds(log) == {
        "server.camera_rule: camera rule round of session … failed ← "
        "sqlite3.OperationalError: database is locked": 2,
        "aiohttp.server: Error handling request": 1}
