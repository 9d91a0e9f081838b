"""Is a face visible in a camera sample? An optional extra check next to :mod:`media.camera`.

The detector is OpenCV's Viola–Jones Haar cascade ``haarcascade_frontalface_default.xml``,
run through ``cv2.CascadeClassifier``. It was chosen because the cascade file ships inside
the ``opencv-python-headless`` wheel (``cv2.data.haarcascades``): nothing is downloaded,
there is no model to fetch or store, and it needs no GPU. OpenCV 5 moved
``CascadeClassifier`` out of the main package, so the requirement is
``opencv-python-headless>=4.10,<5``; the constructor says so when it meets a build
without it.

Input: a small grey image, shorter side :data:`FACE_SHORT_SIDE` (160) pixels, aspect ratio
kept — 213×160 for a 640×480 camera, 284×160 for 1280×720. :func:`face_input` makes one
from a decoded PyAV frame (the key frame that :func:`media.camera.analyse_keyframe`
decodes anyway). :meth:`FaceDetector.has_face` accepts any size: an image more than a
quarter larger is downscaled to that size first, a smaller one is searched as it is.

Smallest face found: :data:`MIN_FACE` (0.15) of the shorter side, i.e. a face 72 px high
in a 640×480 frame; a person at a laptop or a desk webcam is 25–50 % of the frame high.

Cost on the project's machine (2 cores, OpenCV 4.14) at 213×160, measured: 10–15 ms a
call with a face or a busy scene in the picture, 6 ms for a plain one, 1 ms for a black
frame, with OpenCV spreading the call over both cores (15–20 ms with
``cv2.setNumThreads(1)``); :func:`face_input` adds 0.1 ms. At one sample every 3 s that
is well under 1 % of a core per participant. (A coarser ``scale_factor`` of 1.2 halves
the cost but misses more faces; the defaults favour finding a face that is there.)

Limits, which make this a switchable check that is off by default, never a verdict on
its own: the cascade finds upright, roughly frontal faces only, so a profile, a face
looking down at notes, a strongly tilted head, a face half out of the frame, a dark or
strongly back-lit room, a mask or heavy blur all give a false "no face". Patterned
backgrounds now and then give a false "face". A caller should act only on "no face" in
several consecutive samples.

Threads: OpenCV's algorithm objects are not thread-safe by design, and
``CascadeClassifier.detectMultiScale`` keeps per-call state in the object. A
:class:`FaceDetector` therefore holds a lock: one detector may be shared by any number
of threads, and their calls run one at a time (OpenCV itself spreads one call over the
cores). For calls that really run in parallel, give each thread its own detector.
"""

from __future__ import annotations

import math
import os
import threading
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av
    import cv2

CASCADE_FILE = "haarcascade_frontalface_default.xml"
FACE_SHORT_SIDE = 160  # shorter side, pixels, of the grey image the detector works on
MIN_FACE = 0.15  # smallest face searched for: this fraction of the image's shorter side
WINDOW = 24  # the cascade's window, pixels: nothing smaller can be found
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5
# A larger image is downscaled to FACE_SHORT_SIDE; one up to this much larger is not
# worth the resize.
_RESIZE_ABOVE = FACE_SHORT_SIDE * 5 // 4


class FaceDetectorUnavailable(RuntimeError):
    """OpenCV, its ``CascadeClassifier`` or the cascade file is missing or unreadable."""


class FaceDetector:
    """Says whether a grey image shows at least one frontal face (see the module doc).

    Loads the cascade once; raises :class:`FaceDetectorUnavailable` if it cannot.
    ``min_face`` is the smallest face searched for, as a fraction (0 < f ≤ 1) of the
    image's shorter side (after the downscale to :data:`FACE_SHORT_SIDE`); faces below
    :data:`WINDOW` pixels are never found. ``cascade_path`` overrides the bundled file.
    One instance may be shared by threads (calls are serialised by a lock)."""

    def __init__(self, *, min_face: float = MIN_FACE, scale_factor: float = SCALE_FACTOR,
                 min_neighbors: int = MIN_NEIGHBORS, cascade_path: str | None = None) -> None:
        if not 0.0 < min_face <= 1.0:
            raise ValueError(f"min_face must be in (0, 1], not {min_face!r}")
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, not {scale_factor!r}")
        if min_neighbors < 0:
            raise ValueError(f"min_neighbors must be >= 0, not {min_neighbors!r}")
        try:
            import cv2
        except ImportError as e:
            raise FaceDetectorUnavailable(
                f"OpenCV is not installed ({e}): pip install 'opencv-python-headless>=4.10,<5'"
            ) from e
        if not hasattr(cv2, "CascadeClassifier"):
            raise FaceDetectorUnavailable(
                f"this OpenCV ({cv2.__version__}) has no CascadeClassifier (OpenCV 5 moved "
                "it out): pip install 'opencv-python-headless>=4.10,<5'")
        if cascade_path is None:
            folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
            if not isinstance(folder, str):
                raise FaceDetectorUnavailable(
                    f"this OpenCV ({cv2.__version__}) bundles no Haar cascades (cv2.data is "
                    "missing, as in distribution builds): use opencv-python-headless or pass "
                    "cascade_path")
            cascade_path = os.path.join(folder, CASCADE_FILE)
        if not os.path.isfile(cascade_path):
            raise FaceDetectorUnavailable(f"face cascade not found: {cascade_path}")
        try:  # a malformed file raises (cv2.error, surfacing as SystemError), an empty one not
            cascade = cv2.CascadeClassifier(cascade_path)
        except (cv2.error, SystemError) as e:
            raise FaceDetectorUnavailable(
                f"face cascade could not be loaded: {cascade_path}: {e}") from e
        if cascade.empty():
            raise FaceDetectorUnavailable(f"face cascade could not be loaded: {cascade_path}")
        self._cascade: cv2.CascadeClassifier = cascade
        self._lock = threading.Lock()
        self.min_face = min_face
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def has_face(self, grey: np.ndarray) -> bool:
        """Whether ``grey`` (a 2-D ``uint8`` array, any size) shows a frontal face.

        Best at :data:`FACE_SHORT_SIDE` (see :func:`face_input`); larger images are
        downscaled to it, images under :data:`WINDOW` pixels on a side give False. Never
        raises on a 2-D ``uint8`` array; raises ``ValueError`` on anything else.
        Blocking (10–20 ms, see the module doc): call it from a thread, not the event
        loop."""
        import cv2

        if not isinstance(grey, np.ndarray) or grey.ndim != 2 or grey.dtype != np.uint8:
            shape = getattr(grey, "shape", None)
            dtype = getattr(grey, "dtype", type(grey).__name__)
            raise ValueError(f"has_face wants a 2-D uint8 array, not {dtype} {shape}")
        height, width = grey.shape
        short = min(height, width)
        if short < WINDOW:
            return False
        image = np.ascontiguousarray(grey)
        if short > _RESIZE_ABOVE:
            scale = FACE_SHORT_SIDE / short
            size = (max(WINDOW, round(width * scale)), max(WINDOW, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            short = min(size)
        side = min(short, max(WINDOW, math.ceil(self.min_face * short)))
        with self._lock:
            faces = self._cascade.detectMultiScale(
                image, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                minSize=(side, side))
        return len(faces) > 0


def face_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) :func:`face_input` reduces a ``width``×``height`` frame to:
    shorter side :data:`FACE_SHORT_SIDE`, aspect ratio kept; a smaller frame keeps its
    size."""
    short = min(width, height)
    if short <= FACE_SHORT_SIDE:
        return max(1, width), max(1, height)
    scale = FACE_SHORT_SIDE / short
    return max(1, round(width * scale)), max(1, round(height * scale))


def face_input(frame: av.VideoFrame) -> np.ndarray:
    """A decoded PyAV frame as the grey image :meth:`FaceDetector.has_face` wants
    (2-D ``uint8``, size :func:`face_size`). Blocking (well under a ms at 640×480)."""
    width, height = face_size(frame.width, frame.height)
    small = frame.reformat(width=width, height=height, format="gray")
    return np.ascontiguousarray(small.to_ndarray(), dtype=np.uint8)
