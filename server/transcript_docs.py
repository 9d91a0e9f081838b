"""A session transcript rendered as a DOCX (python-docx) and as an A4 PDF (fpdf2, Roboto).

Contract:

* ``render_transcript_docx(doc, text) -> bytes`` and ``render_transcript_pdf(doc, text) ->
  bytes`` are blocking and pure (they read only the bundled font and template files): the
  caller runs them in a thread.
* ``doc`` is ``{"language", "generated_at", "dossier_title", "session": {"title", "kind",
  "started_at", "ended_at", "spoken_language", "model"}, "participants": [{"id", "name",
  "pseudonym", "role"}], "segments": [{"start", "end", "speaker_id", "speaker_name",
  "text"}]}``; segment times are seconds on the session timeline.
* ``text(key, params)`` returns the catalogue message ``key`` in the document's language,
  with ``{name}`` placeholders filled from ``params``. Every visible label comes from it,
  with keys starting ``transcript_doc.``; codes are rendered as ``role.<role>``,
  ``kind.<kind>`` and ``lang.<language>``, and an unknown code (``text`` answers the key
  itself) is printed raw. Values (names, titles, spoken text) are printed as given,
  normalised to NFC.
* Times are ISO-8601 strings in UTC (a naive one is taken as UTC), shown in Vietnam time
  (UTC+7) as ``dd/mm/yyyy HH:MM``. Each segment shows its offset from the session start
  (``H:MM:SS``) and, when ``started_at`` is known, its Vietnam wall-clock time
  (``HH:MM:SS``, with ``dd/mm/yyyy`` when not on the session's first day).
* The DOCX is A4, Times New Roman, its language ``vi-VN`` (``en-US`` for English speech),
  with ``transcript_doc.page`` as PAGE/NUMPAGES fields in the footer; the PDF has it too.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from importlib.resources import as_file, files
from typing import Any

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor
from docx.text.paragraph import Paragraph
from fpdf import FontFace
from fpdf.enums import TableCellFillMode, XPos, YPos

from server.attendance_pdf import DASH, FONT, GREY, MARGIN, ZEBRA, _duration, _nfc, _Pdf, _when

Text = Callable[[str, Mapping[str, object] | None], str]
DOCX_FONT = "Times New Roman"  # has every Vietnamese letter, on every Word installation
WORD_LANG = {"vi": "vi-VN", "en": "en-US"}
CLOCK_W = 24.0  # mm: the PDF's time column


@dataclass(frozen=True)
class _Entry:
    offset: str  # H:MM:SS from the session start
    clock: str | None  # Vietnam wall-clock time
    speaker: str
    text: str


@dataclass(frozen=True)
class _Content:
    """What both formats print, every label already looked up."""

    title: str
    fields: list[tuple[str, str]]
    notes: list[str]
    participants_heading: str
    heads: list[str]
    people: list[list[str]]
    no_people: str
    dialogue_heading: str
    entries: list[_Entry]
    no_speech: str
    session_title: str


def _code(text: Text, family: str, value: object) -> str:
    key = f"{family}.{value}"
    label = text(key, None)
    return str(value) if label == key else label


def _content(doc: Mapping[str, Any], text: Text) -> _Content:
    def say(key: str, **params: object) -> str:
        return text(f"transcript_doc.{key}", params or None)

    session = doc.get("session") or {}
    start, end = _when(session.get("started_at")), _when(session.get("ended_at"))
    day = "%d/%m/%Y %H:%M"
    span = DASH
    if start is not None:
        same = end is not None and end.date() == start.date()
        span = say("time_range", start=start.strftime(day),
                   end=end.strftime("%H:%M" if same else day) if end else DASH)
    generated = _when(doc.get("generated_at"))
    fields = [
        (say("field.dossier"), _nfc(doc.get("dossier_title") or DASH)),
        (say("field.session"), _nfc(session.get("title") or DASH)),
        (say("field.kind"), _code(text, "kind", session.get("kind", ""))),
        (say("field.time"), span),
        (say("field.language"), _code(text, "lang", session.get("spoken_language", ""))),
        (say("field.model"), _nfc(session.get("model") or DASH)),
        (say("field.generated"), generated.strftime(day) if generated else DASH),
    ]
    # A pseudonym is the only name shown (older documents also carried the real one).
    names = {p.get("id"): _nfc(p.get("pseudonym") or p.get("name", ""))
             for p in doc.get("participants") or []}
    people = [[str(n), names[p.get("id")],
               say("pseudonymous") if p.get("pseudonym") else DASH,
               _code(text, "role", p.get("role", ""))]
              for n, p in enumerate(doc.get("participants") or [], 1)]
    entries = []
    for seg in doc.get("segments") or []:
        at = float(seg.get("start") or 0.0)
        clock = None
        if start is not None:
            moment = start + timedelta(seconds=round(at))
            clock = moment.strftime("%H:%M:%S" if moment.date() == start.date()
                                    else "%d/%m/%Y %H:%M:%S")
        speaker = names.get(seg.get("speaker_id")) or _nfc(seg.get("speaker_name") or "")
        entries.append(_Entry(_duration(at), clock, speaker or say("unknown_speaker"),
                              _nfc(seg.get("text", "")).strip()))
    return _Content(
        title=say("title"), fields=fields, notes=[say("timezone"), say("machine_note")],
        participants_heading=say("participants"),
        heads=["#", say("col.name"), say("col.pseudonym"), say("col.role")], people=people,
        no_people=say("no_participants"), dialogue_heading=say("dialogue"), entries=entries,
        no_speech=say("no_speech"), session_title=_nfc(session.get("title") or ""),
    )


def _page_parts(text: Text) -> list[str]:
    """``transcript_doc.page`` split around its ``{page}`` and ``{pages}`` placeholders."""
    template = text("transcript_doc.page", {"page": "{page}", "pages": "{pages}"})
    return [p for p in re.split(r"(\{page\}|\{pages\})", template) if p]


# -- DOCX --------------------------------------------------------------------------------

def _docx_font(rpr: Any, lang: str) -> None:
    """Times New Roman for every script (theme fonts dropped) and the proofing language."""
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.insert(0, fonts)
    for attr in list(fonts.attrib):
        if attr.endswith("Theme"):
            del fonts.attrib[attr]
    for attr in ("w:ascii", "w:hAnsi", "w:cs", "w:eastAsia"):
        fonts.set(qn(attr), DOCX_FONT)
    for old in rpr.findall(qn("w:lang")):
        rpr.remove(old)
    tag = OxmlElement("w:lang")
    for attr in ("w:val", "w:bidi", "w:eastAsia"):
        tag.set(qn(attr), lang)
    rpr.append(tag)


def _field(paragraph: Paragraph, code: str) -> None:
    """A Word field (PAGE, NUMPAGES), computed when the document is shown."""
    for kind in ("begin", "instr", "end"):
        if kind == "instr":
            part = OxmlElement("w:instrText")
            part.set(qn("xml:space"), "preserve")
            part.text = f" {code} "
        else:
            part = OxmlElement("w:fldChar")
            part.set(qn("w:fldCharType"), kind)
        paragraph.add_run()._r.append(part)


def render_transcript_docx(doc: dict[str, Any], text: Text) -> bytes:
    """``doc`` as a Word document, every label from ``text`` (see the module docstring)."""
    c = _content(doc, text)
    lang = WORD_LANG.get(str((doc.get("session") or {}).get("spoken_language")), "vi-VN")
    out = Document()
    out.core_properties.title = f"{c.title} - {c.session_title}"
    out.core_properties.language = lang
    out.core_properties.author = "hoidong"
    defaults = out.styles.element.find(qn("w:docDefaults"))
    _docx_font(defaults.find(qn("w:rPrDefault")).find(qn("w:rPr")), lang)
    for name in ("Normal", "Heading 1", "Heading 2"):
        style: Any = out.styles[name]
        _docx_font(style.element.get_or_add_rPr(), lang)
        if name.startswith("Heading"):
            style.font.color.rgb = RGBColor(0, 0, 0)
    out.styles["Normal"].font.size = Pt(12)
    section = out.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.left_margin = section.right_margin = Mm(25)
    section.top_margin = section.bottom_margin = Mm(20)
    footer = section.footer.paragraphs[0]
    footer.alignment = WD_ALIGN_PARAGRAPH.CENTER
    for part in _page_parts(text):
        if part in ("{page}", "{pages}"):
            _field(footer, "PAGE" if part == "{page}" else "NUMPAGES")
        else:
            footer.add_run(part)

    out.add_heading(c.title, level=1)
    for label, value in c.fields:
        line = out.add_paragraph()
        line.paragraph_format.space_after = Pt(0)
        line.add_run(f"{label}: ").bold = True
        line.add_run(value)
    for note in c.notes:
        out.add_paragraph().add_run(note).italic = True

    out.add_heading(c.participants_heading, level=2)
    if c.people:
        table = out.add_table(rows=1, cols=len(c.heads), style="Table Grid")
        for cell, head in zip(table.rows[0].cells, c.heads, strict=True):
            cell.paragraphs[0].add_run(head).bold = True
        for person in c.people:
            for cell, value in zip(table.add_row().cells, person, strict=True):
                cell.paragraphs[0].add_run(value)
    else:
        out.add_paragraph(c.no_people)

    out.add_heading(c.dialogue_heading, level=2)
    if not c.entries:
        out.add_paragraph(c.no_speech)
    for e in c.entries:
        line = out.add_paragraph()
        line.paragraph_format.space_after = Pt(4)
        stamp = line.add_run(f"[{e.offset}" + (f" · {e.clock}]" if e.clock else "]") + " ")
        stamp.font.size = Pt(10)
        stamp.font.color.rgb = RGBColor(90, 90, 90)
        line.add_run(e.speaker).bold = True
        line.add_run(": " + e.text)
    buffer = io.BytesIO()
    out.save(buffer)
    return buffer.getvalue()


# -- PDF ---------------------------------------------------------------------------------

def _pdf_body(pdf: _Pdf, c: _Content) -> None:
    def heading(label: str, size: float) -> None:
        if pdf.will_page_break(20):
            pdf.add_page()
        pdf.set_font(FONT, "B", size)
        pdf.multi_cell(0, size * 0.5, label, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1.5)

    def line(label: str, size: float = 9, grey: bool = False) -> None:
        pdf.set_font(FONT, "", size)
        pdf.set_text_color(90 if grey else 0)
        pdf.multi_cell(0, size * 0.5, label, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(0)

    pdf.add_page()
    heading(c.title, 16)
    for label, value in c.fields:
        pdf.set_font(FONT, "B", 9.5)
        pdf.cell(42, 5.2, label)
        pdf.set_font(FONT, "", 9.5)
        pdf.multi_cell(0, 5.2, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1.5)
    for note in c.notes:
        line(note, 8.5, grey=True)
    pdf.ln(5)

    heading(c.participants_heading, 12)
    if c.people:
        pdf.set_font(FONT, "", 9)
        with pdf.table(col_widths=(8, 70, 32, 70), line_height=5, padding=(0.8, 1.2),
                       repeat_headings=1, text_align="LEFT", cell_fill_color=ZEBRA,
                       cell_fill_mode=TableCellFillMode.ROWS,
                       headings_style=FontFace(emphasis="BOLD", fill_color=GREY)) as table:
            for values in [c.heads, *c.people]:
                row = table.row()
                for value in values:
                    row.cell(value)
    else:
        line(c.no_people, grey=True)
    pdf.ln(5)

    heading(c.dialogue_heading, 12)
    if not c.entries:
        line(c.no_speech, 10, grey=True)
    left, width = pdf.l_margin + CLOCK_W, pdf.epw - CLOCK_W
    for e in c.entries:
        if pdf.will_page_break(15):
            pdf.add_page()
        page, top = pdf.page, pdf.y
        pdf.set_font(FONT, "", 8)
        pdf.set_text_color(100)
        pdf.cell(CLOCK_W, 5, e.offset, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if e.clock:
            pdf.cell(CLOCK_W, 4, e.clock)
        pdf.set_text_color(0)
        bottom = pdf.y + 4
        pdf.set_xy(left, top)
        pdf.set_font(FONT, "B", 9.5)
        pdf.multi_cell(width, 5, e.speaker, new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_font(FONT, "", 9.5)
        pdf.multi_cell(width, 5, e.text or DASH, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if pdf.page == page:
            pdf.set_y(max(pdf.y, bottom))
        pdf.ln(2)


def render_transcript_pdf(doc: dict[str, Any], text: Text) -> bytes:
    """``doc`` as an A4 PDF, every label from ``text`` (see the module docstring)."""
    c = _content(doc, text)
    pdf = _Pdf(
        running_head=f"{c.title} · {c.session_title}",
        footer=lambda page: text("transcript_doc.page", {"page": page, "pages": "{nb}"}),
    )
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(True, margin=MARGIN)
    pdf.set_title(f"{c.title} - {c.session_title}")
    pdf.set_lang(str(doc.get("language") or "vi"))
    pdf.set_creator("hoidong")
    pdf.set_draw_color(150)
    pdf.set_line_width(0.2)
    with ExitStack() as stack:
        fonts = files("font_roboto") / "files"
        for style, name in (("", "Roboto-Regular.ttf"), ("B", "Roboto-Bold.ttf")):
            pdf.add_font(FONT, style, stack.enter_context(as_file(fonts / name)))
        _pdf_body(pdf, c)
        return bytes(pdf.output())
