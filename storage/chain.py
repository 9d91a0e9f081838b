"""The hash chain of audit events, and its check (offline: no database needed).

Each event belongs to one chain (a session's, the archive-access chain, a dossier's or
the system's) and carries its place ``seq`` (1, 2, ...), the hash of the event before
it (``prev``; :data:`GENESIS` for the first) and its own hash:

    hash = SHA-256(canonical_json({"chain", "seq", "prev", "at", "kind", "actor",
                                   "dossier_id", "session_id", "participant_id", "data"}))

as lowercase hex, with ``at`` written by :func:`format_time` (UTC, microseconds, ``Z``)
and :func:`storage.canonical.canonical_json` as the byte form. Changing any field of any
event, removing one or putting one in changes a hash that a later event (or the
chain's recorded head) commits to, so :func:`verify_chain` finds the first place where
the chain breaks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storage.canonical import canonical_json

__all__ = ["ACCESS_CHAIN", "GENESIS", "HASHED_FIELDS", "ChainBreak", "ChainCheck",
           "chain_name", "event_hash", "format_time", "session_chain", "verify_chain"]

GENESIS = "0" * 64
HASHED_FIELDS = ("chain", "seq", "prev", "at", "kind", "actor", "dossier_id", "session_id",
                 "participant_id", "data")


ACCESS_CHAIN = "access"


def chain_name(kind: str, session_id: str | None, dossier_id: str | None) -> str:
    """The chain an event belongs to: ``"access"`` for views and downloads of evidence
    (kinds ``access.*``), else ``"session:<id>"``, ``"dossier:<id>"`` or ``"system"``."""
    if kind.startswith("access."):
        return ACCESS_CHAIN
    if session_id:
        return session_chain(session_id)
    if dossier_id:
        return dossier_chain(dossier_id)
    return "system"


def session_chain(session_id: str) -> str:
    """The name of a session's chain."""
    return f"session:{session_id}"


def dossier_chain(dossier_id: str) -> str:
    """The name of a dossier's own chain (its events outside any session)."""
    return f"dossier:{dossier_id}"


def format_time(at: datetime) -> str:
    """``at`` as hashed: UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (naive means UTC)."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(event: Mapping[str, Any]) -> str:
    """The hash of ``event`` (a mapping with every name in :data:`HASHED_FIELDS`; ``at``
    already a :func:`format_time` string)."""
    return hashlib.sha256(canonical_json({k: event[k] for k in HASHED_FIELDS})).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where a chain first fails: the event (``seq`` and, when known, ``event_id``) and
    why — ``"chain.gap"`` (an event is missing or out of place), ``"chain.prev_mismatch"``
    (the event does not follow the one before it), ``"chain.hash_mismatch"`` (the event
    was changed after it was written) or ``"chain.head_mismatch"`` (events at the end are
    missing)."""

    chain: str
    seq: int
    event_id: Any
    code: str


@dataclass(frozen=True, slots=True)
class ChainCheck:
    chain: str
    events: int
    head: str  # the last event's hash (GENESIS for an empty chain)
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def verify_chain(chain: str, events: Iterable[Mapping[str, Any]], *,
                 head: str | None = None, head_seq: int | None = None) -> ChainCheck:
    """Check one chain's events, given in ``seq`` order, each a mapping with the hashed
    fields plus ``hash`` (and optionally ``id``, reported in a break). ``head`` and
    ``head_seq``, where recorded separately (the database keeps them per chain), must
    match the last event: without them, removing the last events cannot be told."""
    prev, seq, count = GENESIS, 0, 0
    for event in events:
        count += 1
        seq += 1
        at = (event["seq"], event.get("id"))
        if event["chain"] != chain or event["seq"] != seq:
            return ChainCheck(chain, count, prev, ChainBreak(chain, seq, at[1], "chain.gap"))
        if event["prev"] != prev:
            return ChainCheck(chain, count, prev,
                              ChainBreak(chain, seq, at[1], "chain.prev_mismatch"))
        if event_hash(event) != event["hash"]:
            return ChainCheck(chain, count, prev,
                              ChainBreak(chain, seq, at[1], "chain.hash_mismatch"))
        prev = event["hash"]
    if (head is not None and head != prev) or (head_seq is not None and head_seq != seq):
        return ChainCheck(chain, count, prev, ChainBreak(chain, seq + 1, None,
                                                         "chain.head_mismatch"))
    return ChainCheck(chain, count, prev, None)
