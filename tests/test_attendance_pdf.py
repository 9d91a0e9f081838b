"""The attendance report PDF: A4, Vietnamese text intact, Vietnam time, page breaks."""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pypdf import PdfReader

from server.attendance_pdf import render_attendance_pdf
from server.i18n import catalogue

START = datetime(2026, 12, 1, 7, 0, 0, tzinfo=UTC)  # 14:00:00 in Vietnam


def messages() -> dict[str, dict[str, str]]:
    return dict(catalogue())


class Catalogue:
    """A ``text`` callable bound to one language that remembers unknown keys."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.cat = messages()
        self.unknown: set[str] = set()

    def __call__(self, key: str, params: Mapping[str, object] | None) -> str:
        assert key.startswith(("report.", "role.", "kind.", "mode.")), key
        entry = self.cat.get(key)
        if entry is None:
            self.unknown.add(key)
            return key
        return entry[self.lang].format_map({k: str(v) for k, v in (params or {}).items()})


def iso(offset_s: float) -> str:
    return (START + timedelta(seconds=offset_s)).isoformat()


def span(a: float, b: float, **extra: Any) -> dict[str, Any]:
    return {"from": iso(a), "to": iso(b), "seconds": b - a, **extra}


def participant(n: int, name: str, role: str, pieces: int) -> dict[str, Any]:
    reasons = ["connection_lost", "left", "moved_to_lobby", "replaced"]
    connections = [{"joined_at": iso(i * 600), "left_at": iso(i * 600 + 540),
                    "seconds": 540.0, "reason": reasons[i % len(reasons)]}
                   for i in range(pieces)]
    connections[-1]["reason"] = "mystery_code" if n == 1 else "session_ended"
    camera_reasons = ["black", "frozen", "no_frames", "page_off", "no_face"]
    return {
        "id": f"p{n}", "name": name, "pseudonym": None, "role": role,
        "camera_required": role in {"chair", "secretary", "member"},
        "connections": connections,
        "gaps": [span(i * 600 + 540, i * 600 + 600) for i in range(pieces - 1)],
        "camera_off": [span(i * 600 + 100, i * 600 + 130, reason=camera_reasons[i % 5])
                       for i in range(pieces)],
        "non_compliant": [span(i * 600 + 100, i * 600 + 130, reason="black")
                          for i in range(0, pieces, 3)],
        "in_room": [span(0, 1800)] if role == "room" else [],
        "connected_s": 540.0 * pieces, "in_room_s": 1800.0 if role == "room" else 0.0,
        "absent_s": 60.0 * (pieces - 1), "camera_on_s": 510.0 * pieces,
        "camera_off_s": 30.0 * pieces, "camera_on_pct": 94.4444 if n != 4 else None,
        "non_compliant_s": 30.0 * len(range(0, pieces, 3)),
    }


def report(people: list[dict[str, Any]], lang: str = "vi") -> dict[str, Any]:
    return {
        "language": lang,
        "generated_at": iso(4 * 3600 + 5),
        "session": {"id": "s1", "title": "Phiên họp thẩm định Trường Đại học Sư phạm Huế",
                    "kind": "council_meeting", "mode": "hybrid",
                    "dossier_title": "Hồ sơ tự đánh giá cơ sở giáo dục năm 2026",
                    "started_at": iso(0), "ended_at": iso(3 * 3600 + 1234.4),
                    "length_s": 3 * 3600 + 1234.4},
        "quorum": {"rule": {"ratio": 2 / 3, "needs_chair": True},
                   "not_met": [span(0, 95.0), span(3000, 3310.6)], "not_met_s": 405.6},
        "participants": people,
    }


NAMES = [
    ("Nguyễn Thị Hồng Nhung", "chair"), ("Trần Văn Đức", "secretary"),
    ("Phạm Quỳnh Ưng", "member"), ("Lê Thị Ánh Tuyết", "member"),
    ("Hoàng Minh Khải", "reviewer"), ("Phòng họp tầng 3", "room"),
]


def full_report(lang: str = "vi") -> dict[str, Any]:
    people = [participant(n, name, role, 14) for n, (name, role) in enumerate(NAMES, 1)]
    # Decomposed (NFD) input must come out as the same letters.
    people[2]["pseudonym"] = unicodedata.normalize("NFD", "Người đánh giá số 3")
    return report(people, lang)


def pdf_text(data: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(data))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def test_full_report_in_vietnamese() -> None:
    text = Catalogue("vi")
    data = render_attendance_pdf(full_report(), text)
    assert data.startswith(b"%PDF-")
    reader, content = pdf_text(data)
    assert len(reader.pages) > 2
    for page in reader.pages:
        box = page.mediabox
        assert abs(float(box.width) - 595.28) < 1 and abs(float(box.height) - 841.89) < 1
    for n, (name, _) in enumerate(NAMES):
        # The third has a pseudonym: the report (stored, archived) shows only that.
        assert (name in content) == (n != 2), name
    for label in ("Báo cáo điểm danh", "Tổng hợp theo người tham dự", "Mất kết nối",
                  "Chủ tịch Hội đồng", "Thư ký", "Phiên họp Hội đồng thẩm định",
                  "Kết hợp trực tiếp và trực tuyến", "Hình đứng yên", "Không thấy khuôn mặt",
                  "Chuyển về phòng chờ", "Người đánh giá số 3", "Tên hiển thị là bí danh",
                  "giờ Việt Nam (UTC+7)",
                  "Hồ sơ tự đánh giá cơ sở giáo dục năm 2026", "Phòng họp (thiết bị chung)"):
        assert label in content, label
    # 07:00:00Z is 14:00:00 in Vietnam; dates as dd/mm/yyyy.
    assert "01/12/2026 14:00:00" in content  # started
    assert "01/12/2026 17:20:34" in content  # ended (3:20:34 later)
    assert "3:20:34" in content  # length
    assert "14:01:35" in content  # end of the first interval without quorum
    assert "14:00:00" in content.replace("01/12/2026 14:00:00", "")
    assert "94,4%" in content and "66,7%" in content
    assert "Trang 1/" in content and f"Trang {len(reader.pages)}/{len(reader.pages)}" in content
    # An unknown leave reason is printed as its code; every other key exists.
    assert "mystery_code" in content
    assert text.unknown == {"report.leave.mystery_code"}


def test_english_labels() -> None:
    text = Catalogue("en")
    _, content = pdf_text(render_attendance_pdf(full_report("en"), text))
    for label in ("Attendance report", "Summary by participant", "Connection lost",
                  "Vietnam time (UTC+7)", "Trần Văn Đức", "94.4%"):
        assert label in content, label
    assert text.unknown == {"report.leave.mystery_code"}


def test_empty_participants_still_renders() -> None:
    text = Catalogue("vi")
    empty = report([])
    empty["session"].update(started_at=None, ended_at=None, length_s=0.0)
    empty["quorum"] = {"rule": {"ratio": None, "needs_chair": False}, "not_met": [],
                       "not_met_s": 0.0}
    reader, content = pdf_text(render_attendance_pdf(empty, text))
    assert len(reader.pages) == 1
    assert "Phiên không có người tham dự." in content
    assert "Báo cáo điểm danh" in content
    assert not text.unknown
