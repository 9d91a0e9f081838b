"""Finding sessions and transcript lines: Vietnamese without its diacritics.

Archivists type "kiem dinh" and mean "kiểm định". :func:`fold` is the one form both the
stored lines and the query are compared in: Unicode NFD with the combining marks
removed, "đ"/"Đ" (a letter of its own, not a d with a mark) as "d", lowercase, spaces
collapsed. Each transcript line keeps its folded text (``transcript_segments.folded``),
and a search is a substring match on it, on SQLite and PostgreSQL alike — every word
matches wherever it appears, as a prefix too ("kiem" finds "kiểm định" and "kiểm tra").

An index makes it fast (migration 0015): on SQLite an FTS5 table with the trigram
tokenizer over the folded text (:data:`FTS_TABLE`), which narrows each word of three
letters or more to the lines holding it before the substring match; on PostgreSQL a
pg_trgm GIN index, which serves the LIKE match itself.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, select, text

from server.database import Database
from server.models import Dossier, MeetingSession, Participant, Transcript, TranscriptSegment

__all__ = ["FTS_TABLE", "Hit", "fold", "search_lines"]

MAX_HITS = 100
FTS_TABLE = "transcript_folded_fts"  # SQLite only; its shadow tables share the prefix


def fold(text: str) -> str:
    """``text`` without diacritics, lowercase, single-spaced ("Kiểm  Định" → "kiem dinh")."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return " ".join(bare.lower().split())


@dataclass(frozen=True, slots=True)
class Hit:
    session_id: str
    session_title: str
    session_kind: str
    started_at: datetime | None
    dossier_id: str
    dossier_title: str
    institution: str
    participant_id: str
    speaker: str
    start: float
    end: float
    text: str


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search_lines(db: Database, q: str, *, dossier_id: str | None = None,
                       institution: str | None = None, kind: str | None = None,
                       since: datetime | None = None, until: datetime | None = None,
                       participant: str | None = None, limit: int = MAX_HITS) -> list[Hit]:
    """Transcript lines (of each session's newest finished transcript) containing every
    word of ``q``, folded; filtered by dossier, institution (substring, folded), session
    kind, session start in [since, until) and speaker name (substring, folded). Newest
    sessions first, lines in time order."""
    words = fold(q).split()
    newest = (select(Transcript.id)
              .where(Transcript.session_id == MeetingSession.id, Transcript.status == "done")
              .order_by(Transcript.created_at.desc()).limit(1)
              .correlate(MeetingSession).scalar_subquery())
    stmt = (select(TranscriptSegment, MeetingSession, Dossier, Participant)
            .join(Transcript, Transcript.id == TranscriptSegment.transcript_id)
            .join(MeetingSession, MeetingSession.id == Transcript.session_id)
            .join(Dossier, Dossier.id == MeetingSession.dossier_id)
            .join(Participant, Participant.id == TranscriptSegment.participant_id)
            .where(Transcript.id == newest))
    fts = db.engine.dialect.name == "sqlite"
    for n, word in enumerate(words):
        stmt = stmt.where(TranscriptSegment.folded.like(_like(word), escape="\\"))
        if fts and len(word) >= 3:  # a trigram needs three letters
            phrase = '"' + word.replace('"', '""') + '"'
            indexed = (text(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :w{n}")
                       .bindparams(**{f"w{n}": phrase}).columns(rowid=Integer))
            stmt = stmt.where(TranscriptSegment.id.in_(indexed))
    if dossier_id:
        stmt = stmt.where(MeetingSession.dossier_id == dossier_id)
    if kind:
        stmt = stmt.where(MeetingSession.kind == kind)
    if since:
        stmt = stmt.where(MeetingSession.started_at >= since)
    if until:
        stmt = stmt.where(MeetingSession.started_at < until)
    stmt = stmt.order_by(MeetingSession.started_at.desc(), MeetingSession.id,
                         TranscriptSegment.seq)
    inst, who = fold(institution or ""), fold(participant or "")
    hits: list[Hit] = []
    async with db.session() as s:
        for seg, m, d, p in (await s.execute(stmt)).all():
            if inst and inst not in fold(d.institution):
                continue
            name = p.pseudonym or p.name
            if who and who not in fold(name):
                continue
            hits.append(Hit(m.id, m.title, m.kind, m.started_at, d.id, d.title, d.institution,
                            p.id, name, seg.start_s, seg.end_s, seg.text))
            if len(hits) >= limit:
                break
    return hits
