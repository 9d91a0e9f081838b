"""A session's rules for cameras and quorum, fixed when the session is created.

The Ministry's letter requires every council member attending online to keep the camera
on for the whole time; other kinds of session choose. A session's policy is stored with
it, fully resolved (defaults filled in), so changing a default later never changes the
rules a past session was held under.

* ``camera_required_roles``: roles held to the camera rule (and refused at the offer
  without a camera).
* ``camera_grace_s``: a camera may be off this long before the participant is warned
  (sound and Vietnamese message on their page, alert on the hosts' panel).
* ``camera_escalation_s``: after the warning, this much longer and the off interval is
  marked non-compliant (from the moment the camera went off); with ``camera_to_lobby``
  the participant is also moved back to the lobby.
* ``quorum_ratio``: the share of the counted roles (council: chair, secretary, members;
  other kinds: team lead and reviewers) that must be present — connected with the camera
  on, or in the meeting room of a hybrid session — for the meeting to be quorate; None: no
  quorum rule. ``quorum_needs_chair``: the chair (team lead) must be present as well.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from server.models import MeetingSession, ParticipantRole, SessionKind

R = ParticipantRole
COUNCIL_ROLES = frozenset({R.CHAIR, R.SECRETARY, R.MEMBER})
TEAM_ROLES = frozenset({R.TEAM_LEAD, R.REVIEWER})


@dataclass(frozen=True)
class SessionPolicy:
    camera_required_roles: tuple[str, ...]
    camera_grace_s: float = 10.0
    camera_escalation_s: float = 60.0
    camera_to_lobby: bool = False
    quorum_ratio: float | None = None
    quorum_needs_chair: bool = False

    def camera_required(self, role: str) -> bool:
        return role in self.camera_required_roles

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["camera_required_roles"] = list(self.camera_required_roles)
        return data


def quorum_roles(kind: str) -> frozenset[str]:
    """The roles a quorum counts in a session of ``kind`` (observers never count)."""
    return frozenset(COUNCIL_ROLES if kind == SessionKind.COUNCIL_MEETING else TEAM_ROLES)


def chair_role(kind: str) -> str:
    """Who chairs a session of ``kind`` for ``quorum_needs_chair``."""
    return R.CHAIR if kind == SessionKind.COUNCIL_MEETING else R.TEAM_LEAD


def quorum_needed(ratio: float, counted: int) -> int:
    """How many of ``counted`` must be present (2/3 of 7 is 5); a tiny tolerance keeps
    2/3 of 9 at 6 despite floating point."""
    return max(1, math.ceil(ratio * counted - 1e-9)) if counted else 1


def default_policy(kind: str) -> SessionPolicy:
    """The rules a new session of ``kind`` gets unless its creator says otherwise."""
    roles = tuple(sorted(COUNCIL_ROLES))
    if kind == SessionKind.COUNCIL_MEETING:
        return SessionPolicy(roles, quorum_ratio=2 / 3, quorum_needs_chair=True)
    return SessionPolicy(roles)


def resolve(kind: str, given: dict[str, Any] | None) -> SessionPolicy:
    """``given`` (already validated: known keys and types) over the kind's defaults."""
    base = default_policy(kind).to_json()
    # An explicit null means "no quorum rule"; elsewhere it means "the default".
    base.update({k: v for k, v in (given or {}).items() if v is not None or k == "quorum_ratio"})
    base["camera_required_roles"] = tuple(sorted(set(base["camera_required_roles"])))
    return SessionPolicy(**base)


def session_policy(session: MeetingSession) -> SessionPolicy:
    """The policy ``session`` was created with (sessions made before policies existed get
    their kind's defaults)."""
    stored = session.policy
    if not stored:
        return default_policy(session.kind)
    return resolve(session.kind, stored)
