"""The camera rule and the quorum as decisions over time (server.compliance), and the
session policies they follow (server.session_policy)."""

from __future__ import annotations

import pytest

from server.compliance import BackOn, Compliance, NonCompliant, QuorumChanged, Warned
from server.models import MeetingSession
from server.session_policy import default_policy, quorum_needed, resolve, session_policy

T0 = 1_800_000_000.0


def council(**given: object) -> Compliance:
    return Compliance("council_meeting", resolve("council_meeting", dict(given)))


def test_policies_by_kind_and_resolution() -> None:
    c = default_policy("council_meeting")
    assert c.camera_required("member") and c.camera_required("chair")
    assert not c.camera_required("observer") and not c.camera_required("room")
    assert (c.camera_grace_s, c.camera_escalation_s, c.camera_to_lobby) == (10.0, 60.0, False)
    assert c.quorum_ratio == pytest.approx(2 / 3) and c.quorum_needs_chair
    assert default_policy("interview").quorum_ratio is None
    # Given values win; an explicit null quorum means no rule; the rest keeps the default.
    p = resolve("council_meeting", {"camera_grace_s": 5, "quorum_ratio": None,
                                    "camera_required_roles": ["interviewee", "member"]})
    assert p.camera_grace_s == 5 and p.quorum_ratio is None and p.camera_escalation_s == 60
    assert p.camera_required("interviewee") and not p.camera_required("chair")
    assert resolve("interview", {"camera_grace_s": None}).camera_grace_s == 10
    # What is stored is what a session is judged by, whatever the defaults become.
    stored = MeetingSession(kind="council_meeting", policy=p.to_json())
    assert session_policy(stored) == p
    assert session_policy(MeetingSession(kind="interview", policy=None)) == default_policy(
        "interview")
    assert [quorum_needed(2 / 3, n) for n in (3, 7, 9, 10)] == [2, 5, 6, 7]


def test_grace_warning_escalation_and_back_on() -> None:
    c = council(camera_grace_s=10, camera_escalation_s=20)
    c.member("m", "Thành viên", "member")
    c.connected("m", T0)
    c.camera("m", T0 + 2, True, None)
    assert c.tick(T0 + 30) == []  # on: nothing to decide (no chair: never quorate)
    c.camera("m", T0 + 40, False, "black")
    assert not [d for d in c.tick(T0 + 49.9) if not isinstance(d, QuorumChanged)]
    assert c.tick(T0 + 50) == [Warned("m", T0 + 40, "black", 20)]
    assert c.tick(T0 + 55) == []  # warned once
    assert c.tick(T0 + 70) == [NonCompliant("m", T0 + 40, "black")]  # from when it went off
    assert c.members["m"].warnings == 1
    c.camera("m", T0 + 75, True, None)
    decisions = c.tick(T0 + 76)
    assert BackOn("m", T0 + 40, T0 + 75, "non_compliant") in decisions
    # Time on camera: 2→40 and 75→100.
    assert c.members["m"].on_camera_s(T0 + 100) == pytest.approx(38 + 25)


def test_short_offs_and_who_is_held_to_the_rule() -> None:
    c = council(camera_grace_s=10, camera_escalation_s=20)
    c.member("m", "Thành viên", "member")
    c.member("o", "Quan sát viên", "observer")
    for pid in ("m", "o"):
        c.connected(pid, T0)
        c.camera(pid, T0 + 1, True, None)
    c.camera("m", T0 + 10, False, "no_frames")
    c.camera("m", T0 + 15, True, None)  # back within the grace period: nothing to say
    c.camera("o", T0 + 10, False, "black")  # an observer may switch off
    assert not [d for d in c.tick(T0 + 100) if not isinstance(d, QuorumChanged)]
    panel = c.panel(T0 + 100)
    states = {p["id"]: p["state"] for p in panel["participants"]}
    assert states == {"m": "ok", "o": "ok"}


def test_reconnect_does_not_reset_the_off_clock() -> None:
    c = council(camera_grace_s=10, camera_escalation_s=20)
    c.member("m", "Thành viên", "member")
    c.connected("m", T0)
    c.camera("m", T0 + 1, True, None)
    c.camera("m", T0 + 5, False, "black")
    assert [type(d) for d in c.tick(T0 + 16) if not isinstance(d, QuorumChanged)] == [Warned]
    c.disconnected("m", T0 + 18)
    assert c.tick(T0 + 40) == []  # not online: not held to it meanwhile
    c.connected("m", T0 + 41)
    c.camera("m", T0 + 42, False, "black")
    assert c.tick(T0 + 42) == [NonCompliant("m", T0 + 5, "black")]


def test_quorum_two_thirds_with_the_chair_and_the_room() -> None:
    c = council()
    c.member("chair", "Chủ tịch", "chair")
    c.member("sec", "Thư ký", "secretary")
    for i in range(4):
        c.member(f"m{i}", f"Ủy viên {i}", "member")
    c.member("obs", "Quan sát viên", "observer")  # never counted
    c.member("room", "Phòng họp", "room")
    q = c.quorum()
    assert (q["counted"], q["needed"], q["met"]) == (6, 4, False)
    t = T0
    for pid in ("sec", "m0", "m1", "m2", "obs"):
        c.connected(pid, t)
        c.camera(pid, t + 1, True, None)
    assert c.quorum()["present"] == 4 and not c.quorum()["met"]  # no chair
    c.room("chair", True, t + 5)  # the chair is in the meeting room
    assert c.quorum()["met"]
    assert c.quorum()["present"] == 5
    c.camera("m2", t + 9, False, "black")  # a camera off does not count as present
    assert c.quorum()["met"] and c.quorum()["present"] == 4
    c.camera("m1", t + 10, False, "no_frames")
    assert not c.quorum()["met"] and c.quorum()["present"] == 3
    c.room("m3", True, t + 12)
    assert c.quorum()["met"]
    changes = [d for d in c.tick(t + 13) if isinstance(d, QuorumChanged)]
    assert [(d.met, d.at) for d in changes] == [(True, t + 5), (False, t + 10), (True, t + 12)]
    # In the room nobody is held to the camera rule, even with a camera role.
    assert not c.members["m3"].held_to_camera()


def test_no_quorum_rule_and_camera_off_sessions() -> None:
    c = Compliance("interview", default_policy("interview"))
    c.member("r", "Người phỏng vấn", "reviewer")
    c.connected("r", T0)
    assert c.quorum()["met"] and not c.quorum()["rule"]
    assert c.tick(T0 + 1000) == []
