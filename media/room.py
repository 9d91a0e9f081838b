"""Who receives whom in one live meeting.

A :class:`Room` holds the media peers of one session's connected participants (keyed
by an opaque member id) and a :class:`Forwarder`. When a member's media is ready it
publishes each of its tracks and is given every other member's tracks in free slots
of the same kind; when it leaves, the slots showing it are freed. Methods return the
members whose slot assignments changed, so the caller can tell those clients.

Screens are different: everyone's offer carries a screen track, silent until they
share, and each client has few screen slots. Only members who say they are sharing
(:meth:`Room.set_sharing`) are shown, the latest first.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from media.forwarder import Forwarder
from media.frames import EncodedFrame
from media.peer import ParticipantPeer, Slot
from media.sendworker import SendWorkers
from media.speaker import ActiveSpeaker

SPEAKER_INTERVAL_S = 0.2  # how often the active speaker is re-decided


def source_key(member: str, track_key: str) -> str:
    return f"{member}/{track_key}"


def source_member(source: str) -> str:
    return source.split("/", 1)[0]


class Room:
    """``on_speaker`` is called with the new active speaker (a member, or None when
    nobody speaks) whenever it changes."""

    def __init__(self, on_speaker: Callable[[str | None], None] | None = None,
                 workers: SendWorkers | None = None, worker_fanout: int = 16) -> None:
        self.forwarder = Forwarder(workers, worker_fanout)
        self.speaker = ActiveSpeaker()
        self._on_speaker = on_speaker
        self._speaker_checked = 0.0
        self._peers: dict[str, ParticipantPeer] = {}
        self._muted: set[tuple[str, str]] = set()
        self._sharing: list[str] = []  # members sharing their screen, latest last

    def publish(self, member: str, track_key: str, frame: EncodedFrame) -> None:
        """A frame from ``member``'s track (the peer's frame listener calls this)."""
        self.forwarder.publish(source_key(member, track_key), frame)

    def level(self, member: str, level: int) -> None:
        """An audio level (-dBov) from ``member``'s microphone (the peer reports each)."""
        now = time.monotonic()
        self.speaker.add(member, level, now)
        if now - self._speaker_checked >= SPEAKER_INTERVAL_S:
            self._speaker_checked = now
            self._check_speaker(now)

    def _check_speaker(self, now: float) -> None:
        if self.speaker.update(now) and self._on_speaker is not None:
            self._on_speaker(self.speaker.current)

    def join(self, member: str, peer: ParticipantPeer) -> set[str]:
        """Add ``member`` (its offer answered); returns members whose slots changed."""
        if member in self._peers:
            self.leave(member)
        for track_key in peer.published:
            self.forwarder.add_publisher(
                source_key(member, track_key),
                lambda k=track_key: peer.request_keyframe(k),  # type: ignore[misc]
            )
        self._peers[member] = peer
        for kind in ("audio", "video"):
            if (member, kind) in self._muted:
                self.set_muted(member, kind, True)
        changed: set[str] = set()
        for other, other_peer in self._peers.items():
            if other == member:
                continue
            for track_key, kind in other_peer.published.items():
                if kind != "screen" and self._fill(peer, source_key(other, track_key), kind):
                    changed.add(member)
            for track_key, kind in peer.published.items():
                if kind != "screen" and self._fill(other_peer, source_key(member, track_key),
                                                    kind):
                    changed.add(other)
        return changed | self._assign_screens()

    def leave(self, member: str) -> set[str]:
        """Remove ``member``; returns the members that were receiving it."""
        peer = self._peers.pop(member, None)
        if member in self._sharing:
            self._sharing.remove(member)
        self.speaker.forget(member)
        self._check_speaker(time.monotonic())
        if peer is None:
            return set()
        changed: set[str] = set()
        for track_key in peer.published:
            key = source_key(member, track_key)
            for other, other_peer in self._peers.items():
                if any(s.track.source == key for s in other_peer.slots):
                    changed.add(other)
            self.forwarder.remove_publisher(key)
        for slot in peer.slots:
            self.forwarder.unsubscribe(slot.track)
        return changed | self._assign_screens()

    def set_sharing(self, member: str, sharing: bool) -> set[str]:
        """``member`` started or stopped sharing its screen; returns members whose
        screen slots changed. Ignored for a member with no screen track."""
        peer = self._peers.get(member)
        if member in self._sharing:
            self._sharing.remove(member)
        if sharing and peer is not None and "screen" in peer.published.values():
            self._sharing.append(member)
        return self._assign_screens()

    def sharing(self) -> list[str]:
        """Members sharing their screen, the latest last."""
        return list(self._sharing)

    def _assign_screens(self) -> set[str]:
        """Show each member the latest screens shared by others, one per screen slot."""
        changed: set[str] = set()
        for member, peer in self._peers.items():
            slots = [s for s in peer.slots if s.kind == "screen"]
            shown = [
                source_key(other, key)
                for other in reversed(self._sharing) if other != member
                for key, kind in self._peers[other].published.items() if kind == "screen"
            ]
            for i, slot in enumerate(slots):
                want = shown[i] if i < len(shown) else None
                if slot.track.source == want:
                    continue
                if want is None:
                    self.forwarder.unsubscribe(slot.track)
                else:
                    self.forwarder.subscribe(want, slot.track)
                changed.add(member)
        return changed

    def set_muted(self, member: str, kind: str, muted: bool) -> bool:
        """Stop or resume forwarding ``member``'s tracks of ``kind``; False if it has none.

        A member muted before its media is ready stays muted when it arrives.
        """
        if muted:
            self._muted.add((member, kind))
        else:
            self._muted.discard((member, kind))
        if kind == "audio":
            self.speaker.exclude(member, muted)  # nobody hears them: not the speaker
            self._check_speaker(time.monotonic())
        peer = self._peers.get(member)
        if peer is None:
            return False
        keys = [k for k, k_kind in peer.published.items() if k_kind == kind]
        for track_key in keys:
            self.forwarder.set_muted(source_key(member, track_key), muted)
        return bool(keys)

    def assignments(self, member: str) -> list[Slot]:
        peer = self._peers.get(member)
        return list(peer.slots) if peer is not None else []

    def members(self) -> list[str]:
        return list(self._peers)

    def _fill(self, peer: ParticipantPeer, key: str, kind: str) -> bool:
        if any(s.track.source == key for s in peer.slots):
            return False
        for slot in peer.slots:
            if slot.kind == kind and slot.track.source is None:
                self.forwarder.subscribe(key, slot.track)
                return True
        return False  # no free slot: the meeting is larger than the client prepared for
