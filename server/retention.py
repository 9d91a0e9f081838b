"""Retention: how long a dossier's evidence is kept, and the one way it ever goes.

Every stored object gets a retention date when it is written (``retention_years``; on
MinIO a compliance-mode lock nobody can shorten, on local storage hoidong's own record).
:func:`overview` reads each object's date and legal hold from the store — the store,
not the database, is what protects the evidence. :func:`delete_expired` is the
retention action: an admin, with a reason, deletes the objects of a dossier whose
retention date has passed and which carry no legal hold; everything else is kept and
said to be. The action is refused as a whole while the dossier is on legal hold. Every
run is the audit event ``retention.applied`` in the dossier's chain (itself never
deleted), with each deleted object's key and SHA-256 (taken just before); a deleted
document keeps its row, marked deleted. Objects without a retention date (a bucket
made before Object Lock, retention off) are not touched by the action.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from server import audit
from server.database import Database
from server.models import DossierDocument, utcnow
from storage import ObjectStore

__all__ = ["Kept", "Purge", "delete_expired", "overview", "retain_until"]


def retain_until(written_at: datetime, years: int) -> datetime | None:
    """The retention date an object written at ``written_at`` was given (None: off)."""
    return written_at + timedelta(days=365 * years) if years > 0 else None


@dataclass(frozen=True, slots=True)
class Kept:
    """One stored object and what protects it (``until``: aware UTC; None when it has no
    retention date)."""

    key: str
    until: datetime | None
    legal_hold: bool

    def expired(self, now: datetime) -> bool:
        return self.until is not None and self.until <= now and not self.legal_hold


@dataclass(frozen=True, slots=True)
class Purge:
    """What a retention action did: the keys deleted, and the objects kept."""

    deleted: list[str]
    kept: list[Kept]


async def overview(store: ObjectStore, dossier_id: str) -> list[Kept]:
    """Every stored object of the dossier with its retention date and legal hold."""
    out = []
    for key in await store.list_keys(f"dossiers/{dossier_id}/"):
        r = await store.retention(key)
        until = r.until
        if until is not None:
            until = until.replace(tzinfo=UTC) if until.tzinfo is None else until.astimezone(UTC)
        out.append(Kept(key, until, r.legal_hold))
    return out


async def delete_expired(db: Database, store: ObjectStore, dossier_id: str, *,
                         actor: str, reason: str, now: datetime | None = None) -> Purge:
    """The retention action on ``dossier_id`` (the caller has checked the dossier is not
    on legal hold and that ``actor`` may do it). The store refuses, on its own, anything
    still retained (``ObjectLocked``): that error propagates and nothing more is done."""
    now = now or utcnow()
    objects = await overview(store, dossier_id)
    due = [k for k in objects if k.expired(now)]
    deleted: list[dict[str, str]] = []
    try:
        for k in due:
            stat = await store.stat(k.key)
            await store.delete(k.key)
            deleted.append({"key": k.key, "sha256": stat.sha256, "size": str(stat.size),
                            "retained_until": k.until.isoformat() if k.until else ""})
    finally:
        # Every run is recorded, with whatever was deleted even if a later object failed.
        keys = {d["key"] for d in deleted}
        async with db.session() as s:
            if keys:
                docs = (await s.execute(select(DossierDocument).where(
                    DossierDocument.dossier_id == dossier_id,
                    DossierDocument.object_key.in_(keys)))).scalars()
                for doc in docs:
                    doc.deleted_at, doc.deleted_by = now, actor
            audit.record(s, "retention.applied", actor=actor, dossier_id=dossier_id,
                         data={"reason": reason, "deleted": deleted,
                               "kept": len(objects) - len(deleted)})
            await s.commit()
    return Purge([d["key"] for d in deleted], [k for k in objects if not k.expired(now)])
