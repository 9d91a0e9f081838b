"""Live camera compliance and quorum of one session, decided from what the server saw.

:class:`Compliance` is fed facts — a participant connected or went away, the server's
camera check changed its mind (:mod:`media.camera_monitor`), the secretary's roll call
put someone in or out of the meeting room — and :meth:`Compliance.tick` turns the
session's :class:`~server.session_policy.SessionPolicy` into decisions:

* a camera-required participant, online and not in the room, whose camera has been off
  for ``camera_grace_s`` is **warned** (:class:`Warned`);
* ``camera_escalation_s`` later the off interval is **non-compliant** from the moment
  the camera went off (:class:`NonCompliant`; the participant may be moved to the lobby);
* a camera back on ends it (:class:`BackOn`, with how long it was off);
* the quorum (:class:`QuorumChanged`) is re-decided on every fact.

It holds no I/O: the caller (:class:`server.live.LiveRegistry`) records the decisions in
the audit log and tells the pages. Times are wall-clock seconds (``time.time()``); an
off interval that spans a reconnect gap keeps running (a reconnect does not reset it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.session_policy import SessionPolicy, chair_role, quorum_needed, quorum_roles

OK, WARNED, NON_COMPLIANT = "ok", "warned", "non_compliant"


@dataclass
class Member:
    """What the server knows of one participant right now."""

    id: str
    name: str
    role: str
    counted: bool  # towards the quorum
    camera_required: bool
    connected: bool = False
    in_room: bool = False
    camera_on: bool = False
    camera_reason: str | None = "no_frames"
    camera_since: float = 0.0  # when the current camera state began
    camera_on_s: float = 0.0  # closed on-intervals while connected
    off_since: float | None = None  # start of the current off interval (policy clock)
    phase: str = OK
    warnings: int = 0

    def held_to_camera(self) -> bool:
        return self.camera_required and self.connected and not self.in_room

    def present(self) -> bool:
        return (self.connected and self.camera_on) or self.in_room

    def on_camera_s(self, now: float) -> float:
        running = now - self.camera_since if self.connected and self.camera_on else 0.0
        return self.camera_on_s + max(0.0, running)


@dataclass(frozen=True)
class Warned:
    participant_id: str
    since: float
    reason: str | None
    escalation_in_s: float


@dataclass(frozen=True)
class NonCompliant:
    participant_id: str
    since: float
    reason: str | None


@dataclass(frozen=True)
class BackOn:
    participant_id: str
    since: float  # when the camera went off
    at: float
    was: str  # warned | non_compliant


@dataclass(frozen=True)
class QuorumChanged:
    at: float
    met: bool
    present: int
    needed: int
    counted: int
    chair_present: bool


Decision = Warned | NonCompliant | BackOn | QuorumChanged


@dataclass
class Compliance:
    kind: str
    policy: SessionPolicy
    members: dict[str, Member] = field(default_factory=dict)
    quorum_met: bool = False
    _pending: list[Decision] = field(default_factory=list)

    def member(self, pid: str, name: str, role: str) -> Member:
        """The participant ``pid`` (added to the roster on first sight)."""
        m = self.members.get(pid)
        if m is None:
            m = self.members[pid] = Member(
                pid, name, role, counted=role in quorum_roles(self.kind),
                camera_required=self.policy.camera_required(role),
            )
        return m

    def connected(self, pid: str, at: float) -> None:
        m = self.members[pid]
        if m.connected:
            return
        m.connected = True
        # No video track until the offer is answered and the camera check reports.
        m.camera_on, m.camera_reason, m.camera_since = False, "no_video", at
        if m.off_since is None:
            m.off_since = at
        self._quorum(at)

    def disconnected(self, pid: str, at: float) -> None:
        m = self.members.get(pid)
        if m is None or not m.connected:
            return
        m.camera_on_s = m.on_camera_s(at)
        m.connected, m.camera_on = False, False
        self._quorum(at)

    def camera(self, pid: str, at: float, on: bool, reason: str | None) -> None:
        m = self.members.get(pid)
        if m is None or not m.connected:
            return
        if m.camera_on and not on:
            m.camera_on_s = m.on_camera_s(at)
        m.camera_on, m.camera_reason, m.camera_since = on, reason, at
        if on:
            if m.phase != OK and m.off_since is not None:
                self._pending.append(BackOn(pid, m.off_since, at, m.phase))
            m.off_since, m.phase = None, OK
        elif m.off_since is None:
            m.off_since = at
        self._quorum(at)

    def room(self, pid: str, present: bool, at: float) -> None:
        m = self.members.get(pid)
        if m is None or m.in_room == present:
            return
        m.in_room = present
        if present:
            m.phase = OK  # the room is not held to the camera rule
            m.off_since = None if m.camera_on else at
        self._quorum(at)

    def tick(self, now: float) -> list[Decision]:
        """Apply the policy's clocks at ``now``; the decisions since the last tick."""
        p = self.policy
        for m in self.members.values():
            if not m.held_to_camera() or m.camera_on or m.off_since is None:
                continue
            off_for = now - m.off_since
            if m.phase == OK and off_for >= p.camera_grace_s:
                m.phase = WARNED
                m.warnings += 1
                self._pending.append(Warned(m.id, m.off_since, m.camera_reason,
                                            p.camera_escalation_s))
            if m.phase == WARNED and off_for >= p.camera_grace_s + p.camera_escalation_s:
                m.phase = NON_COMPLIANT
                self._pending.append(NonCompliant(m.id, m.off_since, m.camera_reason))
        out, self._pending = self._pending, []
        return out

    def quorum(self) -> dict[str, Any]:
        counted = [m for m in self.members.values() if m.counted]
        present = sum(1 for m in counted if m.present())
        chair = chair_role(self.kind)
        chair_present = any(m.role == chair and (m.connected or m.in_room)
                            for m in self.members.values())
        ratio = self.policy.quorum_ratio
        needed = quorum_needed(ratio, len(counted)) if ratio is not None else 0
        met = ratio is None or (present >= needed and (
            chair_present or not self.policy.quorum_needs_chair))
        return {"rule": ratio is not None, "met": met, "present": present, "needed": needed,
                "counted": len(counted), "chair_present": chair_present}

    def _quorum(self, at: float) -> None:
        if self.policy.quorum_ratio is None:
            return
        q = self.quorum()
        if q["met"] != self.quorum_met:
            self.quorum_met = q["met"]
            self._pending.append(QuorumChanged(at, q["met"], q["present"], q["needed"],
                                               q["counted"], q["chair_present"]))

    def panel(self, now: float) -> dict[str, Any]:
        """What the hosts' panel shows: everyone's state, time on camera, the quorum."""
        return {
            "participants": [{
                "id": m.id, "name": m.name, "role": m.role, "counted": m.counted,
                "camera_required": m.camera_required, "connected": m.connected,
                "in_room": m.in_room, "camera_on": m.camera_on,
                "camera_reason": None if m.camera_on else m.camera_reason,
                "camera_on_s": round(m.on_camera_s(now), 1), "warnings": m.warnings,
                "state": m.phase if m.held_to_camera() else OK,
                "off_for_s": (round(now - m.off_since, 1)
                              if m.held_to_camera() and m.off_since is not None else None),
            } for m in self.members.values()],
            "quorum": self.quorum(),
        }
