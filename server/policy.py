"""Who may do what: one declared table of staff roles per action.

Handlers ask :func:`require` for an action, never for a role, so the policy is read
(and tested) in one place. Participants are not staff: their join link grants them
their own session only, checked in the join and signalling handlers.
"""

from __future__ import annotations

from aiohttp import web

from server.auth import Identity, require_staff
from server.models import StaffRole

A, S, R, C, V = (
    StaffRole.ADMIN, StaffRole.SECRETARY, StaffRole.ARCHIVIST, StaffRole.CHAIR, StaffRole.REVIEWER
)
ALL_STAFF = frozenset(StaffRole)

POLICY: dict[str, frozenset[StaffRole]] = {
    "dossier.create": frozenset({A, S}),
    "dossier.read": ALL_STAFF,
    "session.create": frozenset({A, S}),
    "session.read": ALL_STAFF,
    "session.control": frozenset({A, S, C}),
    "participant.add": frozenset({A, S}),
    "participant.read": frozenset({A, S, C, V, R}),
    "recording.read": frozenset({A, S, C, R}),
    "transcript.read": ALL_STAFF,
    "audit.read": frozenset({A, S, R}),
    # The attendance report: the chair, the secretary and the archivist (Issue 4).
    "attendance.read": frozenset({A, S, C, R}),
    # Archive packages (Issue 7): made by the archivist (or an admin), read by them and
    # the secretary who keeps the dossier.
    "archive.create": frozenset({A, R}),
    "archive.read": frozenset({A, S, R}),
    # A legal hold stops the retention clock for a dossier's evidence: admins only.
    "dossier.legal_hold": frozenset({A}),
    # Dossier documents (minh chứng): uploaded by the secretary (or an admin), read by
    # every staff member who works on the dossier (reviewers appraise them).
    "document.upload": frozenset({A, S}),
    "document.read": ALL_STAFF,
    # Retention: the dates are for those who keep the archive; deleting after them is an
    # admin's audited action (and the store refuses anything still retained).
    "retention.read": frozenset({A, S, R}),
    "retention.delete": frozenset({A}),
    # Minutes (Issue 8): drafted by the secretary; read by those who run the session and
    # keep the archive. The parties agree through their own links, not as staff.
    "minutes.edit": frozenset({A, S}),
    "minutes.read": frozenset({A, S, C, R}),
    # Exports and statistics for the Ministry and the organisation (Issue 9).
    "report.read": frozenset({A, S, R}),
}


def require(request: web.Request, action: str) -> Identity:
    """The caller's identity if the policy lets its role do ``action``; else 401/403."""
    return require_staff(request, POLICY[action])
