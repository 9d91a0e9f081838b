"""The attendance report of a session, computed from its audit log alone.

Everything in it is what the server recorded: joins, leaves and reconnect gaps
(``participant.*``), the server's camera check (``camera.on`` / ``camera.off`` with the
time its evidence was taken), the camera rule's decisions (``camera.non_compliant``,
``camera.compliant``), the roll call of a hybrid session (``room.present`` /
``room.absent``) and the quorum (``quorum.met`` / ``quorum.lost``). Nothing the pages
said is counted.

Per participant, within the session's window (start to end, or to now while live):

* ``connected_s`` — online (joins to leaves, minus reconnect gaps);
* ``in_room_s`` — in the meeting room by the roll call and not also online;
* ``absent_s`` — the rest: ``connected_s + in_room_s + absent_s == length_s``;
* ``camera_on_s`` + ``camera_off_s`` == ``connected_s``; ``camera_on_pct`` of
  ``connected_s`` (None when never connected); ``camera_off`` lists the off intervals
  with the reason in force, ``non_compliant`` the intervals the rule marked.

Times are ISO-8601 UTC strings, durations seconds. :func:`attendance_csv` renders the
summary as CSV (UTF-8 with a BOM, so spreadsheet programs read the Vietnamese right).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from server.models import AuditEvent, Dossier, MeetingSession, Participant, public_name
from server.session_policy import session_policy

Span = tuple[float, float]
VN = timedelta(hours=7)


def _ts(event: AuditEvent, key: str = "server_time") -> float:
    """An event's time: the one its data names (when the evidence was taken), else when
    it was recorded."""
    value = event.data.get(key) if isinstance(event.data, dict) else None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    return event.at.timestamp()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _clip(spans: Iterable[Span], lo: float, hi: float) -> list[Span]:
    return [(max(a, lo), min(b, hi)) for a, b in spans if min(b, hi) > max(a, lo)]


def _union(spans: Iterable[Span]) -> list[Span]:
    out: list[Span] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        elif b > a:
            out.append((a, b))
    return out


def _intersect(xs: Sequence[Span], ys: Sequence[Span]) -> list[Span]:
    out = []
    for a, b in xs:
        for c, d in ys:
            lo, hi = max(a, c), min(b, d)
            if hi > lo:
                out.append((lo, hi))
    return _union(out)


def _subtract(xs: Sequence[Span], ys: Sequence[Span]) -> list[Span]:
    out = []
    for a, b in xs:
        pieces = [(a, b)]
        for c, d in ys:
            pieces = [p for x, y in pieces for p in ((x, min(y, c)), (max(x, d), y)) if p[1] > p[0]]
        out += pieces
    return _union(out)


def _total(spans: Iterable[Span]) -> float:
    return sum(b - a for a, b in spans)


def _spans_out(spans: Iterable[Span], **extra: Any) -> list[dict[str, Any]]:
    return [{"from": _iso(a), "to": _iso(b), "seconds": round(b - a, 3), **extra}
            for a, b in spans]


@dataclass
class _Stretch:
    joined: float
    left: float | None = None
    reason: str = ""
    lost_at: float | None = None


def _connections(events: list[AuditEvent], end: float, ended: bool
                 ) -> tuple[list[_Stretch], list[Span]]:
    """A participant's stretches online (join to leave) and the reconnect gaps in them."""
    stretches: list[_Stretch] = []
    gaps: list[Span] = []
    current: _Stretch | None = None
    for e in events:
        t = _ts(e)
        if e.kind == "participant.joined":
            if current is not None:  # a leave that was never written (a crash)
                current.left, current.reason = t, "unknown"
            current = _Stretch(t)
            stretches.append(current)
        elif current is None:
            continue
        elif e.kind == "participant.connection_lost":
            current.lost_at = t
        elif e.kind == "participant.reconnected":
            gaps.append((current.lost_at if current.lost_at is not None else t, t))
            current.lost_at = None
        elif e.kind == "participant.left":
            lost = _ts(e, "lost_at") if "lost_at" in e.data else current.lost_at
            current.left = lost if lost is not None else t
            current.reason = str(e.data.get("reason", "left"))
            current = None
    if current is not None:
        current.left = current.lost_at if current.lost_at is not None else end
        current.reason = "session_ended" if ended else "connected"
    return stretches, gaps


def _camera_steps(events: list[AuditEvent], start: float, end: float
                  ) -> list[tuple[float, float, bool, str | None]]:
    """The camera's state as steps (from, to, on, reason); "checking" before the first
    check reported anything."""
    marks = sorted((_ts(e), e.kind == "camera.on", e.data.get("reason"))
                   for e in events if e.kind in ("camera.on", "camera.off"))
    steps: list[tuple[float, float, bool, str | None]] = []
    t0, on, reason = start, False, "checking"
    for t, is_on, why in marks:
        if t > t0:
            steps.append((t0, t, on, reason))
        t0, on, reason = max(t0, t), is_on, "" if is_on else str(why or "checking")
    if end > t0:
        steps.append((t0, end, on, reason))
    return steps


def _non_compliant(events: list[AuditEvent], end: float) -> list[tuple[float, float, str]]:
    out = []
    open_at: tuple[float, str] | None = None
    for e in events:
        if e.kind == "camera.non_compliant" and open_at is None:
            open_at = (_ts(e, "since"), str(e.data.get("reason") or ""))
        elif e.kind == "camera.compliant" and open_at is not None:
            out.append((open_at[0], _ts(e), open_at[1]))
            open_at = None
    if open_at is not None:
        out.append((open_at[0], end, open_at[1]))
    return out


def _room(events: list[AuditEvent], end: float) -> list[Span]:
    spans, since = [], None
    for e in events:
        if e.kind == "room.present" and since is None:
            since = _ts(e)
        elif e.kind == "room.absent" and since is not None:
            spans.append((since, _ts(e)))
            since = None
    if since is not None:
        spans.append((since, end))
    return spans


def attendance_report(session: MeetingSession, dossier: Dossier | None,
                      participants: Sequence[Participant], events: Sequence[AuditEvent],
                      *, now: datetime, language: str) -> dict[str, Any]:
    """The report as a JSON-ready dict (see the module doc for what adds up to what).

    ``events`` are the session's audit events in the order recorded. Pure: no I/O."""
    ended = session.ended_at is not None
    start = (session.started_at or (events[0].at if events else now)).timestamp()
    end = max(start, (session.ended_at or now).timestamp())
    length = end - start
    policy = session_policy(session)
    by_person: dict[str, list[AuditEvent]] = {}
    for e in events:
        if e.participant_id:
            by_person.setdefault(e.participant_id, []).append(e)
    people = []
    for p in participants:
        mine = by_person.get(p.id, [])
        stretches, gaps = _connections(mine, end, ended)
        online = _clip(_subtract(
            [(s.joined, s.left if s.left is not None else end) for s in stretches], gaps),
            start, end)
        gaps = _clip(gaps, start, end)
        steps = _camera_steps(mine, start, end)
        on_spans = _intersect([(a, b) for a, b, on, _ in steps if on], online)
        off = []
        for a, b, on, reason in steps:
            if not on:
                off += [(x, y, reason) for x, y in _intersect([(a, b)], online)]
        nc = [(x, y, why) for a, b, why in _non_compliant(mine, end)
              for x, y in _intersect([(a, b)], online)]
        room = _subtract(_clip(_union(_room(mine, end)), start, end), online)
        connected_s, camera_on_s = _total(online), _total(on_spans)
        in_room_s = _total(room)
        people.append({
            # The report is stored and archived: the public name only (a pseudonymous
            # interviewee's real name stays on the participant record, for staff).
            "id": p.id, "name": public_name(p), "pseudonym": p.pseudonym, "role": p.role,
            "camera_required": policy.camera_required(p.role),
            "connections": [{"joined_at": _iso(max(s.joined, start)),
                             "left_at": _iso(min(s.left if s.left is not None else end, end)),
                             "seconds": round(max(0.0, min(s.left or end, end)
                                                  - max(s.joined, start)), 3),
                             "reason": s.reason} for s in stretches
                            if min(s.left or end, end) > max(s.joined, start)],
            "gaps": _spans_out(gaps),
            "camera_off": [{"from": _iso(a), "to": _iso(b), "seconds": round(b - a, 3),
                            "reason": r} for a, b, r in off],
            "non_compliant": [{"from": _iso(a), "to": _iso(b), "seconds": round(b - a, 3),
                               "reason": r} for a, b, r in nc],
            "in_room": _spans_out(room),
            "warnings": sum(1 for e in mine if e.kind == "camera.warning"),
            "connected_s": round(connected_s, 3),
            "in_room_s": round(in_room_s, 3),
            "absent_s": round(max(0.0, length - connected_s - in_room_s), 3),
            "camera_on_s": round(camera_on_s, 3),
            "camera_off_s": round(connected_s - camera_on_s, 3),
            "camera_on_pct": (round(100 * camera_on_s / connected_s, 1)
                              if connected_s > 0 else None),
            "non_compliant_s": round(sum(b - a for a, b, _ in nc), 3),
        })
    not_met: list[Span] = []
    if policy.quorum_ratio is not None:
        since: float | None = start
        for e in events:
            if e.kind == "quorum.met" and since is not None:
                not_met.append((since, _ts(e)))
                since = None
            elif e.kind == "quorum.lost" and since is None:
                since = _ts(e)
        if since is not None:
            not_met.append((since, end))
        not_met = _clip(not_met, start, end)
    return {
        "format": "hoidong-attendance/1",
        "language": language,
        "generated_at": now.astimezone(UTC).isoformat(),
        "session": {"id": session.id, "title": session.title, "kind": session.kind,
                    "mode": session.mode, "dossier_title": dossier.title if dossier else "",
                    "started_at": _iso(start) if session.started_at else None,
                    "ended_at": _iso(end) if ended else None, "length_s": round(length, 3)},
        "policy": policy.to_json(),
        "quorum": {"rule": {"ratio": policy.quorum_ratio,
                            "needs_chair": policy.quorum_needs_chair},
                   "not_met": _spans_out(not_met), "not_met_s": round(_total(not_met), 3)},
        "participants": people,
    }


CSV_COLUMNS = ("name", "pseudonym", "role", "camera_required", "first_joined", "last_left",
               "connected_s", "in_room_s", "absent_s", "camera_on_s", "camera_off_s",
               "camera_on_pct", "non_compliant_s", "warnings", "gaps", "non_compliant")

TextFn = Callable[[str, Mapping[str, object] | None], str]


def _vn(iso: str) -> str:
    return (datetime.fromisoformat(iso) + VN).strftime("%d/%m/%Y %H:%M:%S")


def attendance_csv(report: dict[str, Any], text: TextFn) -> bytes:
    """One row per participant; headers from the catalogue (``report.csv.<column>``),
    times in Vietnam time, durations in seconds."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([text(f"report.csv.{c}", None) for c in CSV_COLUMNS])
    for p in report["participants"]:
        joins = p["connections"]
        w.writerow([
            p["name"], p["pseudonym"] or "", text(f"role.{p['role']}", None),
            text("report.camera_required." + ("yes" if p["camera_required"] else "no"), None),
            _vn(joins[0]["joined_at"]) if joins else "",
            _vn(joins[-1]["left_at"]) if joins else "",
            p["connected_s"], p["in_room_s"], p["absent_s"], p["camera_on_s"],
            p["camera_off_s"], "" if p["camera_on_pct"] is None else p["camera_on_pct"],
            p["non_compliant_s"], p["warnings"],
            "; ".join(f"{_vn(g['from'])}–{_vn(g['to'])}" for g in p["gaps"]),
            "; ".join(f"{_vn(n['from'])}–{_vn(n['to'])} "
                      f"{text('report.camera_reason.' + n['reason'], None)}"
                      for n in p["non_compliant"]),
        ])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
