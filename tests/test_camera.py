"""The camera check on synthetic key frames (black, frozen, noise, a scene) and the
state machine's reasons and timing."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from media.camera import (
    CameraState,
    Reason,
    SampleError,
    analyse_keyframe,
    frozen,
)


def keyframe(img: np.ndarray) -> bytes:
    """``img`` (H×W×3 uint8) encoded as one VP8 key frame, as a browser would send it."""
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = img.shape[1], img.shape[0], "yuv420p"
    enc.time_base = fractions.Fraction(1, 30)
    enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
    packets = [bytes(p) for p in enc.encode(frame)] + [bytes(p) for p in enc.encode(None)]
    return packets[0]


RNG = np.random.default_rng(3)
BLACK = np.zeros((480, 640, 3), np.uint8)


def scene(shift: int = 0) -> np.ndarray:
    """A lit scene: gradients and a face-sized blob, moved by ``shift`` pixels."""
    y, x = np.mgrid[0:480, 0:640]
    img = np.stack([(x + shift) % 256, (y * 2) % 256, ((x + y) // 3) % 256], -1)
    img[150:330, 250 + shift:390 + shift] = (220, 180, 150)
    return img.astype(np.uint8)


def test_black_dark_and_lit_frames() -> None:
    assert analyse_keyframe(keyframe(BLACK)).black
    lit = analyse_keyframe(keyframe(scene()))
    assert not lit.black and lit.mean > 50
    # A dark room is not a covered lens: low light, but a picture.
    dim = (scene() // 8).astype(np.uint8)
    assert not analyse_keyframe(keyframe(dim)).black


def test_frozen_is_sameness_not_stillness() -> None:
    a = analyse_keyframe(keyframe(scene()))
    again = analyse_keyframe(keyframe(scene()))
    assert frozen(a, again)  # the same still, encoded twice
    noisy = np.clip(scene().astype(np.int16) + RNG.integers(-12, 12, (480, 640, 3)), 0, 255)
    assert not frozen(a, analyse_keyframe(keyframe(noisy.astype(np.uint8))))
    assert not frozen(a, analyse_keyframe(keyframe(scene(shift=12))))


@pytest.mark.parametrize(("data", "reason"), [
    (b"", Reason.UNDECODABLE),
    (b"\x00" * 20, Reason.UNDECODABLE),  # not a key frame
    (b"\x10\x02\x00\x9d\x01\x2a\x80\x02\xe0\x01" + b"\xff" * 50, Reason.UNDECODABLE),
    (b"\x10\x02\x00\x9d\x01\x2a\xff\x3f\xff\x3f" + b"\x00" * 50, Reason.TOO_LARGE),
])
def test_what_cannot_be_analysed_says_why(data: bytes, reason: Reason) -> None:
    with pytest.raises(SampleError) as err:
        analyse_keyframe(data)
    assert err.value.reason == reason


def test_state_reasons_and_timing() -> None:
    lit = analyse_keyframe(keyframe(scene()))
    moved = analyse_keyframe(keyframe(scene(shift=20)))
    black = analyse_keyframe(keyframe(BLACK))
    s = CameraState(0.0, stale_s=2.0, frozen_s=10.0)
    assert (s.on, s.reason) == (False, Reason.NO_FRAMES)
    s.frame(0.5)
    s.update(0.5)
    assert (s.on, s.reason) == (False, Reason.CHECKING)
    s.sample(1.0, lit)
    s.frame(1.0)
    assert s.update(1.0) and s.on
    # Frames stop: off after stale_s, not before.
    assert not s.update(2.9)
    assert s.update(3.1) and s.reason == Reason.NO_FRAMES
    # Back, but black (a disabled track).
    s.frame(4.0)
    s.sample(4.0, black)
    assert s.update(4.0) and s.reason == Reason.BLACK
    # Live again, then the same picture for frozen_s.
    t = 5.0
    s.frame(t)
    s.sample(t, moved)
    assert s.update(t) and s.on
    for k in range(1, 7):
        t = 5.0 + 2 * k
        s.frame(t)
        s.sample(t, moved)  # identical samples from 5.0 on
        s.update(t)
    assert (s.on, s.reason) == (False, Reason.FROZEN)
    frozen_at = next(at for at, on, why in s.changes if why == Reason.FROZEN)
    # Decided frozen_s after the first of the identical samples, dated from it (the
    # picture has not changed since), never before the transition that preceded it.
    assert frozen_at == 5.0 and s.changes[-1][0] == 5.0
    # Undecodable samples are off with that reason; never counted as on.
    s.frame(18.0)
    s.sample(18.0, None, Reason.UNDECODABLE)
    s.update(18.0)
    assert (s.on, s.reason) == (False, Reason.UNDECODABLE)
    assert [why for _, _, why in s.changes][:4] == [
        Reason.NO_FRAMES, Reason.CHECKING, None, Reason.NO_FRAMES]
    # No frames counts from the last frame received (1.0), decided stale_s later.
    assert s.changes[3][0] == 1.0


def test_no_video_track() -> None:
    s = CameraState(0.0, has_video=False)
    assert (s.on, s.reason) == (False, Reason.NO_VIDEO)
    assert not s.update(10.0)


def test_face_check_and_presence_still() -> None:
    """With the face check, a picture without a face twice in a row is ``no_face``; a
    face clears it. A still is a small JPEG of the sample."""
    from media.camera import NO_FACE_SAMPLES, STILL_SIZE
    from media.face import FaceDetector
    from tests.test_face import photo

    faces = FaceDetector()
    person = np.asarray(av.VideoFrame.from_ndarray(photo("astronaut.jpg"), format="rgb24")
                        .reformat(width=640, height=480).to_ndarray(format="rgb24"))
    someone = analyse_keyframe(keyframe(person), faces=faces, still=True)
    nobody = analyse_keyframe(keyframe(scene()), faces=faces)
    assert someone.face is True and nobody.face is False
    assert analyse_keyframe(keyframe(BLACK), faces=faces).face is None  # black says enough
    assert analyse_keyframe(keyframe(scene())).face is None  # the check is off
    assert nobody.still is None and someone.still is not None
    assert someone.still[:2] == b"\xff\xd8"  # JPEG
    (still,) = av.CodecContext.create("mjpeg", "r").decode(av.Packet(someone.still))
    assert (still.width, still.height) == STILL_SIZE
    s = CameraState(0.0, stale_s=2.0, frozen_s=100.0)
    for k in range(NO_FACE_SAMPLES):
        s.frame(1.0 + k)
        s.sample(1.0 + k, nobody)
        s.update(1.0 + k)
        assert s.on == (k < NO_FACE_SAMPLES - 1)
    assert s.reason == Reason.NO_FACE
    s.frame(5.0)
    s.sample(5.0, someone)
    assert s.update(5.0) and s.on
