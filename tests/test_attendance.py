"""The attendance report computed from an audit log: what adds up to what, intervals,
reasons, gaps, the room and the quorum; its CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.attendance import attendance_csv, attendance_report
from server.i18n import catalogue, t
from server.models import AuditEvent, Dossier, MeetingSession, Participant
from server.session_policy import resolve

START = datetime(2026, 12, 1, 2, 0, 0, tzinfo=UTC)  # 09:00 in Vietnam


def at(s: float) -> datetime:
    return START + timedelta(seconds=s)


def ev(kind: str, s: float, pid: str | None = None, **data: Any) -> AuditEvent:
    """An event recorded at ``s`` seconds; a ``server_time`` in ``data`` (when the
    evidence was taken) wins over it, as for camera changes recorded a little later."""
    return AuditEvent(kind=kind, at=at(s), participant_id=pid, data=data)


def when(s: float) -> str:
    return at(s).isoformat()


def session(length: float, **policy: Any) -> MeetingSession:
    return MeetingSession(id="s1", kind="council_meeting", title="Phiên thẩm định",
                          mode="hybrid", started_at=START, ended_at=at(length),
                          policy=resolve("council_meeting", policy).to_json())


PEOPLE = [Participant(id="chair", name="Nguyễn Văn An", role="chair"),
          Participant(id="m1", name="Trần Thị Bình", role="member"),
          Participant(id="m2", name="Lê Văn Cường", role="member", pseudonym=None),
          Participant(id="obs", name="Phạm Dung", role="observer")]

EVENTS = [
    # The chair: online 10→590, camera on from 12.
    ev("participant.joined", 10, "chair", connection="c1"),
    ev("camera.off", 10, "chair", reason="no_frames", server_time=when(10)),
    ev("camera.on", 12, "chair", reason=None, server_time=when(12)),
    # A member: online 20→300 with a reconnect gap 100→110, black 150→240 (non-compliant
    # 150→240 after a warning at 160), then stopped: no frames from 280 until leaving.
    ev("participant.joined", 20, "m1", connection="c2"),
    ev("camera.off", 20, "m1", reason="no_frames", server_time=when(20)),
    ev("camera.on", 23, "m1", server_time=when(23)),
    ev("participant.connection_lost", 100, "m1", connection="c2", reason="disconnected"),
    ev("participant.reconnected", 110, "m1", connection="c3", gap_s=10),
    ev("camera.off", 110, "m1", reason="no_frames", server_time=when(110)),
    ev("camera.on", 113, "m1", server_time=when(113)),
    ev("camera.off", 151, "m1", reason="black", server_time=when(150)),
    ev("camera.warning", 160, "m1", off_since=when(150), reason="black"),
    ev("camera.non_compliant", 170, "m1", since=when(150), reason="black"),
    ev("camera.on", 240, "m1", server_time=when(240)),
    ev("camera.compliant", 240, "m1", off_since=when(150), server_time=when(240)),
    ev("camera.off", 282, "m1", reason="no_frames", server_time=when(280)),
    ev("participant.left", 300, "m1", connection="c3", reason="left"),
    # Another member is in the meeting room 60→600 (the roll call), never online.
    ev("room.present", 60, "m2", server_time=when(60)),
    # The observer: lost at 400 and never came back (the leave counts from the loss).
    ev("participant.joined", 30, "obs", connection="c4"),
    ev("participant.connection_lost", 400, "obs", connection="c4", reason="media_failed"),
    ev("participant.left", 430, "obs", connection="c4", reason="connection_lost",
       lost_at=when(400)),
    # Quorum: met 60→150 and 240→280.
    ev("quorum.met", 60, server_time=when(60)),
    ev("quorum.lost", 150, server_time=when(150)),
    ev("quorum.met", 240, server_time=when(240)),
    ev("quorum.lost", 280, server_time=when(280)),
]


def report() -> dict[str, Any]:
    return attendance_report(session(600), Dossier(title="Hồ sơ thẩm định"), PEOPLE, EVENTS,
                             now=at(700), language="vi")


def spans(items: list[dict[str, Any]], *extra: str) -> list[tuple[Any, ...]]:
    return [(round((datetime.fromisoformat(i["from"]) - START).total_seconds(), 3),
             round((datetime.fromisoformat(i["to"]) - START).total_seconds(), 3),
             *(i[k] for k in extra)) for i in items]


def test_totals_add_up_to_the_session() -> None:
    rep = report()
    assert rep["session"]["length_s"] == 600
    for p in rep["participants"]:
        assert p["connected_s"] + p["in_room_s"] + p["absent_s"] == pytest.approx(600), p["id"]
        assert p["camera_on_s"] + p["camera_off_s"] == pytest.approx(p["connected_s"])
        assert sum(o["seconds"] for o in p["camera_off"]) == pytest.approx(p["camera_off_s"])


def test_each_participant() -> None:
    people = {p["id"]: p for p in report()["participants"]}
    chair = people["chair"]
    assert chair["connected_s"] == 590 and chair["camera_on_s"] == 588
    assert chair["connections"][0]["reason"] == "session_ended"
    assert spans(chair["camera_off"], "reason") == [(10, 12, "no_frames")]

    m1 = people["m1"]
    assert m1["connected_s"] == 270  # 20→300 less the 10 s gap
    assert spans(m1["gaps"]) == [(100, 110)]
    assert spans(m1["camera_off"], "reason") == [
        (20, 23, "no_frames"), (110, 113, "no_frames"), (150, 240, "black"),
        (280, 300, "no_frames")]
    assert m1["camera_on_s"] == 270 - 3 - 3 - 90 - 20
    assert m1["camera_on_pct"] == round(100 * 154 / 270, 1)
    assert spans(m1["non_compliant"], "reason") == [(150, 240, "black")]
    assert m1["non_compliant_s"] == 90 and m1["warnings"] == 1
    assert [c["reason"] for c in m1["connections"]] == ["left"]

    m2 = people["m2"]
    assert m2["connected_s"] == 0 and m2["in_room_s"] == 540 and m2["camera_on_pct"] is None
    assert spans(m2["in_room"]) == [(60, 600)]

    obs = people["obs"]
    assert obs["connected_s"] == 370 and obs["camera_required"] is False
    assert obs["connections"][0]["left_at"] == when(400)


def test_quorum_intervals() -> None:
    q = report()["quorum"]
    assert spans(q["not_met"]) == [(0, 60), (150, 240), (280, 600)]
    assert q["not_met_s"] == 60 + 90 + 320
    none = attendance_report(session(600, quorum_ratio=None), None, PEOPLE, EVENTS,
                             now=at(700), language="vi")
    assert none["quorum"]["not_met"] == [] and none["quorum"]["rule"]["ratio"] is None


def test_a_live_session_counts_to_now() -> None:
    live = session(600)
    live.ended_at = None
    rep = attendance_report(live, None, PEOPLE, EVENTS, now=at(450), language="vi")
    assert rep["session"]["length_s"] == 450 and rep["session"]["ended_at"] is None
    chair = next(p for p in rep["participants"] if p["id"] == "chair")
    assert chair["connected_s"] == 440 and chair["connections"][0]["reason"] == "connected"


def test_csv_in_vietnamese() -> None:
    rep = report()
    data = attendance_csv(rep, lambda key, params: t(key, "vi", params))
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    header = rows[0]
    assert all(not h.startswith("report.") for h in header), header
    assert "Họ và tên" in header and len(rows) == 1 + len(PEOPLE)
    m1 = dict(zip(header, rows[2], strict=True))
    assert m1["Họ và tên"] == "Trần Thị Bình" and m1["Vai trò"] == t("role.member")
    assert float(m1[t("report.csv.connected_s")]) == 270
    assert "09:02:30" in m1[t("report.csv.non_compliant")]  # 02:02:30 UTC, Vietnam time
    assert t("report.camera_reason.black") in m1[t("report.csv.non_compliant")]
    for key in (f"report.leave.{c['reason']}" for p in rep["participants"]
                for c in p["connections"]):
        assert key in catalogue(), key
