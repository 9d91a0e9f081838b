"""Who is speaking, from the audio levels senders put on their RTP packets (RFC 6464).

No audio is decoded: each publisher's packets carry the level it measured, in -dBov
(0 = loudest, 127 = silence). :class:`ActiveSpeaker` smooths them per member and names
the loudest member above a threshold, with a hold time so that a cough or a short
overlap does not move the highlight. Times are in seconds of any monotonic clock,
passed in by the caller (so tests need no sleeping).
"""

from __future__ import annotations

from dataclasses import dataclass

SILENCE = 127  # -dBov


@dataclass
class _Level:
    smoothed: float = SILENCE
    last_at: float = 0.0


class ActiveSpeaker:
    """Tracks the active speaker of one meeting.

    ``threshold`` is the smoothed level (-dBov) a member must be louder than to count
    as speaking; ``hold_s`` how long someone must stay the loudest before they become
    the speaker; ``silence_s`` how long nobody must speak before there is no speaker
    (pauses between words keep the speaker); ``smoothing`` the weight of each new
    packet's level (packets come every 20 ms); a member whose packets stopped for
    ``stale_s`` does not count. Someone about to become (or being) the speaker keeps
    that place while still speaking unless another is louder by ``margin_db``: without
    it, two people talking at about the same level (or two microphones playing the same
    recording) took turns at being the loudest every few packets, neither lasted the
    hold, and nobody was ever named.
    """

    def __init__(self, *, threshold: float = 60.0, hold_s: float = 0.5,
                 silence_s: float = 1.5, smoothing: float = 0.15,
                 stale_s: float = 1.0, margin_db: float = 3.0) -> None:
        self.threshold = threshold
        self.margin_db = margin_db
        self.hold_s = hold_s
        self.silence_s = silence_s
        self.smoothing = smoothing
        self.stale_s = stale_s
        self.current: str | None = None
        self._levels: dict[str, _Level] = {}
        self._candidate: str | None = None
        self._candidate_since = 0.0
        self._excluded: set[str] = set()

    def add(self, member: str, level: int, now: float) -> None:
        """A packet of ``member`` with audio ``level`` (-dBov, 0..127) arrived at ``now``."""
        state = self._levels.setdefault(member, _Level(last_at=now))
        clamped = min(max(level, 0), SILENCE)
        state.smoothed += self.smoothing * (clamped - state.smoothed)
        state.last_at = now

    def exclude(self, member: str, excluded: bool) -> None:
        """Leave ``member`` out (their audio is not forwarded: nobody hears them)."""
        if excluded:
            self._excluded.add(member)
        else:
            self._excluded.discard(member)

    def forget(self, member: str) -> None:
        self._levels.pop(member, None)
        self._excluded.discard(member)

    def loudest(self, now: float) -> str | None:
        """The member speaking loudest right now (no hold), if anyone is speaking."""
        best, best_level = None, self.threshold
        for member in self._levels:
            state = self._speaking(member, now)
            if state is not None and state.smoothed < best_level:
                best, best_level = member, state.smoothed
        return best

    def _speaking(self, member: str, now: float) -> _Level | None:
        """``member``'s level if it counts as speaking at ``now`` (heard, fresh, above
        the threshold); None otherwise."""
        state = self._levels.get(member)
        if (state is None or member in self._excluded or now - state.last_at > self.stale_s
                or state.smoothed >= self.threshold):
            return None
        return state

    def update(self, now: float) -> bool:
        """Re-decide the speaker at ``now``; True if :attr:`current` changed."""
        loudest = self.loudest(now)
        if loudest is not None and self._candidate not in (None, loudest):
            held = self._speaking(self._candidate, now)
            if held is not None and (
                    held.smoothed - self._levels[loudest].smoothed < self.margin_db):
                loudest = self._candidate  # not louder by the margin: the place is kept
        if loudest != self._candidate:
            self._candidate, self._candidate_since = loudest, now
        hold = self.hold_s if self._candidate is not None else self.silence_s
        if self._candidate == self.current or now - self._candidate_since < hold:
            if self.current is not None and (
                self.current in self._excluded or self.current not in self._levels
            ):
                self.current = None  # muted or gone: no longer heard
                return True
            return False
        self.current = self._candidate
        return True
