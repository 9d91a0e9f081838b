"""The transcript documents: DOCX and A4 PDF, Vietnamese intact, Vietnam time, pages."""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from docx import Document
from docx.oxml.ns import qn
from pypdf import PdfReader

from server.i18n import catalogue
from server.transcript_docs import DOCX_FONT, render_transcript_docx, render_transcript_pdf

START = datetime(2026, 12, 1, 7, 0, 0, tzinfo=UTC)  # 14:00 in Vietnam
A4 = (595.28, 841.89)  # points

PEOPLE = [
    ("p1", "Nguyễn Thị Hồng Nhung", None, "chair"),
    ("p2", "Trần Quốc Việt", None, "secretary"),
    ("p3", "Lê Hoàng Phương Thảo", None, "member"),
    ("p4", "Phạm Đức Thắng", "SV-03", "interviewee"),
    ("p5", "Đặng Thuỳ Dương", None, "mystery_role"),
]
SENTENCES = [
    "Kính thưa Hội đồng, tôi xin trình bày báo cáo tự đánh giá của nhà trường.",
    "Tiêu chuẩn 5 về chương trình đào tạo đã được rà soát kỹ lưỡng từ năm học trước.",
    "Đề nghị đơn vị bổ sung minh chứng về khảo sát mức độ hài lòng của người học.",
    "Chúng tôi đã tổ chức hội thảo lấy ý kiến giảng viên, cựu sinh viên và nhà tuyển dụng.",
    "Tỷ lệ sinh viên tốt nghiệp có việc làm đúng ngành sau mười hai tháng đạt khoảng 87%.",
    "Phần đánh giá nội bộ còn thiếu số liệu về nghiên cứu khoa học của giảng viên trẻ.",
    "Ý kiến của quý vị sẽ được ghi nhận đầy đủ vào biên bản cuộc họp hôm nay.",
    "Xin cảm ơn, tôi đồng ý với nhận xét của Chủ tịch về kế hoạch cải tiến chất lượng.",
]


def iso(offset_s: float) -> str:
    return (START + timedelta(seconds=offset_s)).isoformat()


def transcript(n_segments: int = 96, lang: str = "vi") -> dict[str, Any]:
    segments = []
    for i in range(n_segments):
        pid, name, _, _ = PEOPLE[i % 4]
        sentence = SENTENCES[i % len(SENTENCES)]
        # The odd ones come decomposed (NFD), as a macOS keyboard may produce them.
        segments.append({
            "start": 5.0 + i * 41.2, "end": 5.0 + i * 41.2 + 30,
            "speaker_id": pid, "speaker_name": name,
            "text": unicodedata.normalize("NFD", sentence) if i % 2 else sentence,
        })
    return {
        "language": lang,
        "generated_at": iso(4 * 3600),
        "dossier_title": "Hồ sơ tự đánh giá Trường Đại học Sư phạm Huế năm 2026",
        "session": {"title": "Phiên họp thẩm định chính thức", "kind": "council_meeting",
                    "started_at": iso(0), "ended_at": iso(3 * 3600 + 1200),
                    "spoken_language": "vi", "model": "whisper-large-v3-vi"},
        "participants": [{"id": pid, "name": name, "pseudonym": pseudo, "role": role}
                         for pid, name, pseudo, role in PEOPLE],
        "segments": segments,
    }


class Catalogue:
    """``text`` for one language from the catalogue; unknown keys fail."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.cat = dict(catalogue())
        self.unknown: set[str] = set()

    def __call__(self, key: str, params: Mapping[str, object] | None) -> str:
        assert key.startswith(("transcript_doc.", "role.", "kind.", "lang.")), key
        entry = self.cat.get(key)
        if entry is None:
            assert not key.startswith("transcript_doc."), f"unknown key {key}"
            self.unknown.add(key)
            return key
        return entry[self.lang].format_map({k: str(v) for k, v in (params or {}).items()})

    def __getitem__(self, key: str) -> str:
        return self.cat[key][self.lang]


def docx_lines(data: bytes) -> tuple[list[str], Any]:
    doc = Document(io.BytesIO(data))
    lines = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        lines += [" | ".join(cell.text for cell in row.cells) for row in table.rows]
    return lines, doc


def pdf_text(data: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(data))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return reader, unicodedata.normalize("NFC", text)


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_docx_has_everything_exactly(lang: str) -> None:
    text = Catalogue(lang)
    lines, doc = docx_lines(render_transcript_docx(transcript(lang=lang), text))
    body = "\n".join(lines)
    assert body == unicodedata.normalize("NFC", body)
    assert lines[0] == text["transcript_doc.title"]
    for key, value in [
        ("field.dossier", "Hồ sơ tự đánh giá Trường Đại học Sư phạm Huế năm 2026"),
        ("field.session", "Phiên họp thẩm định chính thức"),
        ("field.kind", text["kind.council_meeting"]),
        ("field.time", "01/12/2026 14:00 – 17:20"),
        ("field.language", text["lang.vi"]),
        ("field.model", "whisper-large-v3-vi"),
        ("field.generated", "01/12/2026 18:00"),
    ]:
        assert f"{text['transcript_doc.' + key]}: {value}" in lines, key
    for label in ("participants", "dialogue", "timezone"):
        assert text["transcript_doc." + label] in lines
    # A pseudonymous interviewee appears under the pseudonym only, in the list and the
    # dialogue, even where the document also carries the real name (older transcripts).
    assert (f"4 | SV-03 | {text['transcript_doc.pseudonymous']} | {text['role.interviewee']}"
            in lines)
    assert not [line for line in lines if "Phạm Đức Thắng" in line]
    assert f"1 | Nguyễn Thị Hồng Nhung | — | {text['role.chair']}" in lines
    assert "5 | Đặng Thuỳ Dương | — | mystery_role" in lines  # an unknown code, raw
    assert text.unknown == {"role.mystery_role"}
    # The dialogue: segment 1 starts at 0:00:46, 14:00:46 Vietnam time, decomposed text.
    assert f"[0:00:46 · 14:00:46] Trần Quốc Việt: {SENTENCES[1]}" in lines
    assert f"[1:05:19 · 15:05:19] SV-03: {SENTENCES[7]}" in lines
    for sentence in SENTENCES:
        assert any(line.endswith(": " + sentence) for line in lines)
    entries = [p for p in doc.paragraphs if p.text.startswith("[")]
    assert len(entries) == 96
    for p in entries:
        bold = [r.text for r in p.runs if r.bold]
        assert len(bold) == 1 and bold[0] in {pseudo or name for _, name, pseudo, _ in PEOPLE}
    assert [r.text for r in entries[0].runs if r.bold] == ["Nguyễn Thị Hồng Nhung"]
    # A4, Vietnamese proofing language, a font with every Vietnamese letter.
    section = doc.sections[0]
    assert (round(section.page_width.mm), round(section.page_height.mm)) == (210, 297)
    assert doc.core_properties.language == "vi-VN"
    defaults = doc.styles.element.find(qn("w:docDefaults")).find(qn("w:rPrDefault"))
    for rpr in [defaults.find(qn("w:rPr"))] + [
            doc.styles[s].element.rPr for s in ("Normal", "Heading 1", "Heading 2")]:
        assert rpr.rFonts.get(qn("w:ascii")) == rpr.rFonts.get(qn("w:hAnsi")) == DOCX_FONT
        assert rpr.rFonts.get(qn("w:asciiTheme")) is None
        assert rpr.find(qn("w:lang")).get(qn("w:val")) == "vi-VN"
    footer = doc.sections[0].footer.paragraphs[0]._p.xml
    assert "PAGE" in footer and "NUMPAGES" in footer
    assert text["transcript_doc.page"].split("{")[0] in footer


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_pdf_is_a4_with_vietnamese_and_vietnam_time(lang: str) -> None:
    text = Catalogue(lang)
    reader, content = pdf_text(render_transcript_pdf(transcript(lang=lang), text))
    assert len(reader.pages) >= 2
    for page in reader.pages:
        assert (float(page.mediabox.width), float(page.mediabox.height)) == pytest.approx(
            A4, abs=0.5)
    flat = squash(content)
    for _, name, pseudo, _ in PEOPLE:
        assert (name in flat) == (pseudo is None), name
    for sentence in SENTENCES:
        assert sentence in flat
    assert "SV-03" in flat and "mystery_role" in flat
    assert "01/12/2026 14:00 – 17:20" in flat
    assert "0:00:46" in flat and "14:00:46" in flat
    assert text["kind.council_meeting"] in flat
    assert text["transcript_doc.title"] in flat
    pages = len(reader.pages)
    for n in (1, pages):
        label = text["transcript_doc.page"].format(page=n, pages=pages)
        assert label in reader.pages[n - 1].extract_text()


def test_empty_transcript() -> None:
    text = Catalogue("vi")
    doc = transcript(0)
    lines, _ = docx_lines(render_transcript_docx(doc, text))
    assert text["transcript_doc.no_speech"] in lines
    assert not [line for line in lines if line.startswith("[")]
    reader, content = pdf_text(render_transcript_pdf(doc, text))
    assert len(reader.pages) == 1
    assert text["transcript_doc.no_speech"] in squash(content)
    assert "Nguyễn Thị Hồng Nhung" in content


def test_unknown_start_and_no_participants() -> None:
    text = Catalogue("vi")
    doc = transcript(3)
    doc["session"].update(started_at=None, ended_at=None)
    doc["participants"] = []
    doc["segments"][2]["speaker_name"] = ""
    doc["segments"][2]["speaker_id"] = "gone"
    lines, _ = docx_lines(render_transcript_docx(doc, text))
    assert f"{text['transcript_doc.field.time']}: —" in lines
    assert text["transcript_doc.no_participants"] in lines
    assert f"[0:00:46] Trần Quốc Việt: {SENTENCES[1]}" in lines
    assert f"[0:01:27] {text['transcript_doc.unknown_speaker']}: {SENTENCES[2]}" in lines
    _, content = pdf_text(render_transcript_pdf(doc, text))
    assert text["transcript_doc.unknown_speaker"] in content
