"""The agreed minutes (biên bản) as an A4 PDF (fpdf2, Roboto embedded) and a DOCX, in the
Vietnamese administrative layout: the organisation and the number on the left, the
national motto on the right, place and date, the title, the numbered sections, then the
parties with the version each agreed to.

Contract: ``render_minutes_pdf(doc, text)`` and ``render_minutes_docx(doc, text)`` are
blocking and pure (the caller runs them in a thread). ``doc`` is ``{"content": {field:
text}, "version": n, "sha256": hex, "parties": [{"name", "role", "agreed_at"}]}`` (see
:mod:`server.minutes`); every label comes from ``text`` (catalogue keys ``minutes.*``).
All content is plain text, drawn as text: markup in it is shown, never interpreted.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from datetime import date
from importlib.resources import as_file, files
from typing import Any

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Mm, Pt
from fpdf.enums import XPos, YPos

from server.attendance_pdf import FONT, MARGIN, _nfc, _Pdf, _when

__all__ = ["SECTIONS", "render_minutes_docx", "render_minutes_pdf"]

Text = Callable[[str, Mapping[str, object] | None], str]
SECTIONS = ("attendees", "agenda", "content", "conclusions")


def _dated(content: Mapping[str, Any], text: Text) -> str:
    place = _nfc(content.get("place") or "")
    try:
        day = date.fromisoformat(str(content.get("date") or ""))
    except ValueError:
        return place
    return text("minutes.place_date", {"place": place, "day": f"{day.day:02d}",
                                       "month": f"{day.month:02d}", "year": day.year})


def _agreed(party: Mapping[str, Any], doc: Mapping[str, Any], text: Text) -> str:
    at = _when(party.get("agreed_at"))
    return text("minutes.agreed_line", {
        "version": doc.get("version"),
        "at": at.strftime("%d/%m/%Y %H:%M") if at else "-"})


def _cell(pdf: _Pdf, w: float, h: float, value: str, align: str = "L") -> None:
    """A wrapped block of text; the next one starts on the left margin below it."""
    x = pdf.get_x()
    pdf.multi_cell(w, h, value, align=align, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_x(x if w else MARGIN)


def render_minutes_pdf(doc: dict[str, Any], text: Text) -> bytes:
    """``doc`` as an A4 PDF with the fonts embedded."""
    content = doc.get("content") or {}
    footer_note = text("minutes.footer", {"version": doc.get("version"),
                                          "sha256": doc.get("sha256", "")})
    pdf = _Pdf(running_head=_nfc(content.get("title") or ""),
               footer=lambda page: f"{footer_note} · "
               + text("report.page", {"page": page, "pages": "{nb}"}))
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(True, margin=MARGIN)
    pdf.set_title(_nfc(content.get("title") or ""))
    pdf.set_lang("vi")
    pdf.set_creator("hoidong")
    with ExitStack() as stack:
        fonts = files("font_roboto") / "files"
        for style, name in (("", "Roboto-Regular.ttf"), ("B", "Roboto-Bold.ttf"),
                            ("I", "Roboto-Italic.ttf")):
            pdf.add_font(FONT, style, stack.enter_context(as_file(fonts / name)))
        pdf.add_page()
        half = pdf.epw / 2
        top = pdf.get_y()
        pdf.set_font(FONT, "B", 10)
        _cell(pdf, half - 4, 5, _nfc(content.get("organisation") or ""), align="C")
        pdf.set_font(FONT, "", 10)
        _cell(pdf, half - 4, 5, _nfc(content.get("number") or ""), align="C")
        left_end = pdf.get_y()
        pdf.set_xy(MARGIN + half, top)
        pdf.set_font(FONT, "B", 10)
        _cell(pdf, half, 5, text("minutes.motto", None), align="C")
        pdf.set_x(MARGIN + half)
        _cell(pdf, half, 5, text("minutes.motto_2", None), align="C")
        pdf.set_y(max(left_end, pdf.get_y()) + 4)
        pdf.set_font(FONT, "I", 10)
        _cell(pdf, 0, 5, _dated(content, text), align="R")
        pdf.ln(4)
        pdf.set_font(FONT, "B", 13)
        _cell(pdf, 0, 7, _nfc(content.get("title") or ""), align="C")
        pdf.ln(3)
        for n, name in enumerate(SECTIONS, 1):
            pdf.set_font(FONT, "B", 11)
            _cell(pdf, 0, 6, text(f"minutes.section.{name}", {"n": n}))
            pdf.set_font(FONT, "", 11)
            _cell(pdf, 0, 5.5, _nfc(content.get(name) or "-"))
            pdf.ln(2)
        pdf.set_font(FONT, "B", 11)
        _cell(pdf, 0, 6, text("minutes.section.signatures", None))
        pdf.set_font(FONT, "", 11)
        if content.get("signatures"):
            _cell(pdf, 0, 5.5, _nfc(content.get("signatures")))
        for party in doc.get("parties") or []:
            pdf.set_font(FONT, "B", 11)
            _cell(pdf, 0, 5.5, f"{_nfc(party.get('name'))} — "
                           f"{text('role.' + str(party.get('role')), None)}")
            pdf.set_font(FONT, "I", 10)
            _cell(pdf, 0, 5, _agreed(party, doc, text))
        return bytes(pdf.output())


def render_minutes_docx(doc: dict[str, Any], text: Text) -> bytes:
    """``doc`` as a Word document (A4, Times New Roman, Vietnamese)."""
    content = doc.get("content") or {}
    out = Document()
    out.core_properties.title = _nfc(content.get("title") or "")
    out.core_properties.language = "vi-VN"
    out.core_properties.author = "hoidong"
    normal: Any = out.styles["Normal"]
    normal.font.name = "Times New Roman"
    normal.font.size = Pt(13)
    section = out.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.left_margin, section.right_margin = Mm(30), Mm(20)
    section.top_margin = section.bottom_margin = Mm(20)
    head = out.add_table(rows=1, cols=2)
    left, right = head.rows[0].cells
    left.paragraphs[0].add_run(_nfc(content.get("organisation") or "")).bold = True
    left.add_paragraph(_nfc(content.get("number") or ""))
    right.paragraphs[0].add_run(text("minutes.motto", None)).bold = True
    right.add_paragraph().add_run(text("minutes.motto_2", None)).bold = True
    for cell in (left, right):
        for p in cell.paragraphs:
            p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    dated = out.add_paragraph()
    dated.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    dated.add_run(_dated(content, text)).italic = True
    title = out.add_paragraph()
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    title.add_run(_nfc(content.get("title") or "")).bold = True
    for n, name in enumerate(SECTIONS, 1):
        out.add_paragraph().add_run(text(f"minutes.section.{name}", {"n": n})).bold = True
        for line in _nfc(content.get(name) or "-").split("\n"):
            out.add_paragraph(line)
    out.add_paragraph().add_run(text("minutes.section.signatures", None)).bold = True
    if content.get("signatures"):
        out.add_paragraph(_nfc(content.get("signatures")))
    for party in doc.get("parties") or []:
        p = out.add_paragraph()
        p.add_run(f"{_nfc(party.get('name'))} — {text('role.' + str(party.get('role')), None)}"
                  ).bold = True
        out.add_paragraph().add_run(_agreed(party, doc, text)).italic = True
    out.add_paragraph().add_run(text("minutes.footer", {
        "version": doc.get("version"), "sha256": doc.get("sha256", "")})).italic = True
    data = io.BytesIO()
    out.save(data)
    return data.getvalue()
