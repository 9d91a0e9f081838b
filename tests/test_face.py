"""The face check (media/face.py) on real photographs, on pictures without a face, on odd
inputs, and through a VP8 key frame decoded the way media/camera.py decodes one.

The photographs are small JPEGs in tests/fixtures/ (see the README there): a NASA
portrait (public domain) and a coffee cup (CC0), both from scikit-image's bundled data.
"""

from __future__ import annotations

import fractions
import sys
import threading
import time
import types
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from media.face import (
    FACE_SHORT_SIDE,
    WINDOW,
    FaceDetector,
    FaceDetectorUnavailable,
    face_input,
    face_size,
)

FIXTURES = Path(__file__).parent / "fixtures"
RNG = np.random.default_rng(7)


def photo(name: str) -> np.ndarray:
    """A fixture photograph as RGB (H×W×3 uint8)."""
    bgr = cv2.imread(str(FIXTURES / name), cv2.IMREAD_COLOR)
    assert bgr is not None, name
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def grey(rgb: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """``rgb`` as a grey image, resized to ``size`` (width, height) if given."""
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if size is not None:
        g = cv2.resize(g, size, interpolation=cv2.INTER_AREA if size[0] < g.shape[1]
                       else cv2.INTER_LINEAR)
    return g


def keyframe(img: np.ndarray, bit_rate: int = 600_000) -> bytes:
    """``img`` (H×W×3 uint8, RGB) as one VP8 key frame, as a browser would send it."""
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = img.shape[1], img.shape[0], "yuv420p"
    enc.time_base = fractions.Fraction(1, 30)
    enc.bit_rate = bit_rate
    enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
    packets = [bytes(p) for p in enc.encode(frame)] + [bytes(p) for p in enc.encode(None)]
    return packets[0]


def decode(data: bytes) -> av.VideoFrame:
    """One key frame decoded as media.camera.analyse_keyframe does it."""
    frames = av.CodecContext.create("vp8", "r").decode(av.Packet(data))
    assert len(frames) == 1
    frame: av.VideoFrame = frames[0]
    return frame


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return photo("astronaut.jpg")


@pytest.fixture(scope="module")
def coffee() -> np.ndarray:
    return photo("coffee.jpg")


@pytest.mark.parametrize("size", [None, (213, 160), (640, 480), (1280, 960), (200, 150)])
def test_a_face_photo_has_a_face(detector: FaceDetector, astronaut: np.ndarray,
                                 size: tuple[int, int] | None) -> None:
    assert detector.has_face(grey(astronaut, size))


def test_a_face_in_a_dim_room_and_mirrored(detector: FaceDetector,
                                           astronaut: np.ndarray) -> None:
    g = grey(astronaut, (213, 160))
    assert detector.has_face((g * 0.4).astype(np.uint8))
    assert detector.has_face(g[:, ::-1])  # a view with a negative stride
    assert detector.has_face(np.asfortranarray(g))


def test_a_face_in_a_16_9_frame(detector: FaceDetector, astronaut: np.ndarray) -> None:
    wide = np.full((720, 1280), 90, np.uint8)  # 1280×720, the 4:3 photo in the middle
    wide[:, 160:1120] = grey(astronaut, (960, 720))
    assert detector.has_face(wide)
    assert detector.has_face(cv2.resize(wide, face_size(1280, 720), interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize("name", ["black", "grey", "white", "noise", "gradient", "coffee"])
@pytest.mark.parametrize("size", [(213, 160), (320, 240), (640, 480)])
def test_no_face(detector: FaceDetector, coffee: np.ndarray, name: str,
                 size: tuple[int, int]) -> None:
    width, height = size
    if name == "coffee":
        image = grey(coffee, size)
    elif name == "noise":
        image = RNG.integers(0, 256, (height, width), dtype=np.uint8)
    elif name == "gradient":
        image = np.broadcast_to(np.linspace(0, 255, width).astype(np.uint8), (height, width))
    else:
        image = np.full((height, width), {"black": 0, "grey": 128, "white": 255}[name],
                        np.uint8)
    assert not detector.has_face(image)


@pytest.mark.parametrize("shape", [(0, 0), (0, 50), (1, 1), (WINDOW - 1, 500), (WINDOW, WINDOW),
                                   (24, 3000), (3000, 30), (161, 161), (201, 201), (2000, 2000)])
def test_any_size_is_an_answer_not_an_error(detector: FaceDetector,
                                            shape: tuple[int, int]) -> None:
    for image in (np.zeros(shape, np.uint8), RNG.integers(0, 256, shape, dtype=np.uint8)):
        assert detector.has_face(image) is False


def test_a_read_only_array(detector: FaceDetector, astronaut: np.ndarray) -> None:
    g = grey(astronaut)
    g.flags.writeable = False
    assert detector.has_face(g)


@pytest.mark.parametrize("bad", [np.zeros((240, 320), np.float32), np.zeros((240, 320), np.int16),
                                 np.zeros((240, 320, 3), np.uint8), np.zeros(10, np.uint8),
                                 [[0, 0], [0, 0]]])
def test_not_a_grey_image_is_refused(detector: FaceDetector, bad: object) -> None:
    with pytest.raises(ValueError, match="2-D uint8"):
        detector.has_face(bad)  # type: ignore[arg-type]


def test_face_size_keeps_the_aspect_ratio() -> None:
    assert face_size(640, 480) == (213, FACE_SHORT_SIDE)
    assert face_size(1280, 720) == (284, FACE_SHORT_SIDE)
    assert face_size(480, 640) == (FACE_SHORT_SIDE, 213)
    assert face_size(320, 180) == (284, FACE_SHORT_SIDE)
    assert face_size(160, 120) == (160, 120)  # never upscaled


@pytest.mark.parametrize("bit_rate", [150_000, 600_000, 2_000_000])
def test_vp8_key_frame_round_trip(detector: FaceDetector, astronaut: np.ndarray,
                                  bit_rate: int) -> None:
    big = cv2.resize(astronaut, (640, 480), interpolation=cv2.INTER_LINEAR)
    small = face_input(decode(keyframe(big, bit_rate)))
    assert small.dtype == np.uint8 and small.shape == (FACE_SHORT_SIDE, 213)
    assert detector.has_face(small)

    black = face_input(decode(keyframe(np.zeros((480, 640, 3), np.uint8), bit_rate)))
    assert black.shape == (FACE_SHORT_SIDE, 213)
    assert not detector.has_face(black)


def test_vp8_key_frame_without_a_face(detector: FaceDetector, coffee: np.ndarray) -> None:
    big = cv2.resize(coffee, (640, 480), interpolation=cv2.INTER_LINEAR)
    assert not detector.has_face(face_input(decode(keyframe(big))))


def test_one_detector_shared_by_threads(detector: FaceDetector, astronaut: np.ndarray) -> None:
    face = grey(astronaut, (213, 160))
    black = np.zeros((160, 213), np.uint8)
    results: list[tuple[bool, bool]] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(10):
            pair = (detector.has_face(face), detector.has_face(black))
            with lock:
                results.append(pair)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [(True, False)] * 40


def test_cost_per_call(detector: FaceDetector, astronaut: np.ndarray) -> None:
    """10–20 ms at the input size here (see the module doc); the bound is loose for busy CI."""
    face = grey(astronaut, (213, 160))
    detector.has_face(face)
    start = time.perf_counter()
    for _ in range(20):
        detector.has_face(face)
    ms = (time.perf_counter() - start) / 20 * 1000
    print(f"has_face at 213x160: {ms:.1f} ms per call")
    assert ms < 100


def test_missing_cascade_or_opencv_is_a_clear_error(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FaceDetectorUnavailable, match="not found"):
        FaceDetector(cascade_path=str(tmp_path / "nothing.xml"))
    garbage = tmp_path / "garbage.xml"
    garbage.write_text("not a cascade")
    with pytest.raises(FaceDetectorUnavailable, match="could not be loaded"):
        FaceDetector(cascade_path=str(garbage))
    empty = tmp_path / "empty.xml"
    empty.write_text('<?xml version="1.0"?>\n<opencv_storage></opencv_storage>\n')
    with pytest.raises(FaceDetectorUnavailable, match="could not be loaded"):
        FaceDetector(cascade_path=str(empty))
    with monkeypatch.context() as m:  # an OpenCV 5 build: no CascadeClassifier
        m.setitem(sys.modules, "cv2", types.SimpleNamespace(__version__="5.0.0"))
        with pytest.raises(FaceDetectorUnavailable, match="no CascadeClassifier"):
            FaceDetector()
    with monkeypatch.context() as m:  # a distribution build: no cv2.data
        m.setitem(sys.modules, "cv2", types.SimpleNamespace(
            __version__="4.6.0", CascadeClassifier=cv2.CascadeClassifier))
        with pytest.raises(FaceDetectorUnavailable, match="no Haar cascades"):
            FaceDetector()
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    with pytest.raises(FaceDetectorUnavailable, match="OpenCV is not installed"):
        FaceDetector()


@pytest.mark.parametrize("kwargs", [{"min_face": 0.0}, {"min_face": 1.5},
                                    {"scale_factor": 1.0}, {"min_neighbors": -1}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FaceDetector(**kwargs)  # type: ignore[arg-type]
