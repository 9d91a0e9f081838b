"""Who receives whom in one live meeting.

A :class:`Room` holds the media peers of one session's connected participants (keyed
by an opaque member id) and a :class:`Forwarder`. When a member's media is ready it
publishes each of its tracks and is given every other member's tracks in free slots
of the same kind; when it leaves, the slots showing it are freed. Methods return the
members whose slot assignments changed, so the caller can tell those clients.
"""

from __future__ import annotations

from media.forwarder import Forwarder
from media.frames import EncodedFrame
from media.peer import ParticipantPeer, Slot


def source_key(member: str, track_key: str) -> str:
    return f"{member}/{track_key}"


def source_member(source: str) -> str:
    return source.split("/", 1)[0]


class Room:
    def __init__(self) -> None:
        self.forwarder = Forwarder()
        self._peers: dict[str, ParticipantPeer] = {}
        self._muted: set[tuple[str, str]] = set()

    def publish(self, member: str, track_key: str, frame: EncodedFrame) -> None:
        """A frame from ``member``'s track (the peer's frame listener calls this)."""
        self.forwarder.publish(source_key(member, track_key), frame)

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
                if self._fill(peer, source_key(other, track_key), kind):
                    changed.add(member)
            for track_key, kind in peer.published.items():
                if self._fill(other_peer, source_key(member, track_key), kind):
                    changed.add(other)
        return changed

    def leave(self, member: str) -> set[str]:
        """Remove ``member``; returns the members that were receiving it."""
        peer = self._peers.pop(member, None)
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
        return changed

    def set_muted(self, member: str, kind: str, muted: bool) -> bool:
        """Stop or resume forwarding ``member``'s tracks of ``kind``; False if it has none.

        A member muted before its media is ready stays muted when it arrives.
        """
        if muted:
            self._muted.add((member, kind))
        else:
            self._muted.discard((member, kind))
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
