"""An attendance report rendered as an A4 PDF (fpdf2, Roboto from the font-roboto package).

Contract:

* ``render_attendance_pdf(report, text) -> bytes`` is blocking and pure (it reads only the
  bundled font files): the caller runs it in a thread.
* ``report`` is the attendance report dict (``language``, ``generated_at``, ``session``,
  ``quorum``, ``participants``; see the server's attendance module for the schema).
* ``text(key, params)`` returns the catalogue message ``key`` in the report's language, with
  ``{name}`` placeholders filled from ``params``. Every visible label comes from it, with
  keys starting ``report.``; codes are rendered as ``role.<role>``, ``kind.<kind>``,
  ``mode.<mode>`` and ``report.<family>.<code>`` (leave and camera reasons), and an
  unknown code (``text`` answers the key itself) is printed raw. Values (names, titles)
  are printed as given (normalised to NFC, since the font is used without a shaping
  engine).
* Times are ISO-8601 strings in UTC (a naive one is taken as UTC) and are shown in Vietnam
  time (UTC+7): ``dd/mm/yyyy HH:MM:SS``, and ``HH:MM:SS`` inside intervals (with the date
  when it is not the session's first day). Durations in seconds are shown as ``H:MM:SS``,
  percentages with one decimal.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta, timezone
from importlib.resources import as_file, files
from typing import Any

from fpdf import FPDF, FontFace
from fpdf.enums import TableCellFillMode, XPos, YPos

Text = Callable[[str, Mapping[str, object] | None], str]

VN_TZ = timezone(timedelta(hours=7))
FONT = "Roboto"
MARGIN = 15.0
DASH = "—"
GREY = (235, 238, 242)
ZEBRA = (245, 247, 250)


def _nfc(value: object) -> str:
    return unicodedata.normalize("NFC", str(value))


def _when(iso: str | None) -> datetime | None:
    if not iso:
        return None
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(VN_TZ)


def _date_time(iso: str | None) -> str:
    moment = _when(iso)
    return moment.strftime("%d/%m/%Y %H:%M:%S") if moment else DASH


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    total = max(0, round(seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


class _Pdf(FPDF):
    def __init__(self, running_head: str, footer: Callable[[int], str]) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self._running_head = running_head
        self._footer = footer

    def header(self) -> None:
        if self.page_no() > 1:
            self.set_font(FONT, "", 7.5)
            self.set_text_color(110)
            self.cell(0, 4, self._running_head, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.ln(3)
            self.set_text_color(0)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font(FONT, "", 8)
        self.set_text_color(110)
        self.cell(0, 5, self._footer(self.page_no()), align="C")
        self.set_text_color(0)


class _Renderer:
    def __init__(self, report: dict[str, Any], text: Text, pdf: _Pdf) -> None:
        self.report = report
        self.text = text
        self.pdf = pdf
        start = _when(report["session"].get("started_at"))
        self.day: date | None = start.date() if start else None
        self.decimal = text("report.decimal_mark", None)

    # -- formatting ------------------------------------------------------------------

    def say(self, key: str, **params: object) -> str:
        return self.text(key, params or None)

    def code(self, family: str, value: str) -> str:
        # Roles, kinds and modes are the catalogue's own families; the rest are the report's.
        shared = family in ("role", "kind", "mode")
        key = f"{family}.{value}" if shared else f"report.{family}.{value}"
        label = self.text(key, None)
        return value if label == key else label

    def pct(self, value: float | None) -> str:
        return DASH if value is None else f"{value:.1f}".replace(".", self.decimal) + "%"

    def clock(self, iso: str | None) -> str:
        moment = _when(iso)
        if moment is None:
            return DASH
        if self.day is not None and moment.date() != self.day:
            return moment.strftime("%d/%m/%Y %H:%M:%S")
        return moment.strftime("%H:%M:%S")

    # -- building blocks -------------------------------------------------------------

    def keep(self, height: float) -> None:
        """Start a new page unless ``height`` mm still fit on this one."""
        if self.pdf.will_page_break(height):
            self.pdf.add_page()

    def heading(self, label: str, size: float, space: float = 20) -> None:
        self.keep(space)
        self.pdf.set_font(FONT, "B", size)
        self.pdf.multi_cell(0, size * 0.5, label, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.pdf.ln(1)

    def line(self, label: str, size: float = 9, grey: bool = False) -> None:
        self.pdf.set_font(FONT, "", size)
        self.pdf.set_text_color(90 if grey else 0)
        self.pdf.multi_cell(0, size * 0.5, label, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.pdf.set_text_color(0)

    def fields(self, rows: Sequence[tuple[str, str]]) -> None:
        for label, value in rows:
            self.pdf.set_font(FONT, "B", 9)
            self.pdf.cell(38, 5, label)
            self.pdf.set_font(FONT, "", 9)
            self.pdf.multi_cell(0, 5, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def table(
        self, heads: Sequence[str], widths: Sequence[float], rows: Sequence[Sequence[str]],
        right: Sequence[int] = (),
    ) -> None:
        pdf = self.pdf
        pdf.set_font(FONT, "", 8)
        style = FontFace(emphasis="BOLD", fill_color=GREY)
        with pdf.table(
            col_widths=tuple(widths), width=sum(widths), align="LEFT", line_height=4.6,
            headings_style=style, cell_fill_color=ZEBRA, cell_fill_mode=TableCellFillMode.ROWS,
            padding=(0.6, 1.2), repeat_headings=1, text_align="LEFT",
        ) as table:
            for values in [heads, *rows]:
                row = table.row()
                for i, value in enumerate(values):
                    row.cell(value, align="RIGHT" if i in right else "LEFT")
        pdf.ln(2)

    def intervals(
        self, key: str, items: Sequence[Mapping[str, Any]], reason: str | None = None,
        ends: tuple[str, str] = ("from", "to"),
    ) -> None:
        self.keep(16)
        self.pdf.set_font(FONT, "B", 9)
        self.pdf.cell(0, 5, self.say(key, count=len(items)), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if not items:
            self.line(self.say("report.none"), 8.5, grey=True)
            self.pdf.ln(1.5)
            return
        heads = ["#", self.say("report.col.from"), self.say("report.col.to"),
                 self.say("report.col.duration")]
        widths = [9.0, 30.0, 30.0, 22.0]
        rows = []
        for n, item in enumerate(items, 1):
            cells = [str(n), self.clock(item.get(ends[0])), self.clock(item.get(ends[1])),
                     _duration(item.get("seconds"))]
            if reason is not None:
                cells.append(self.code(reason, str(item.get("reason", ""))))
            rows.append(cells)
        if reason is not None:
            heads.append(self.say("report.col.reason"))
            widths.append(self.pdf.epw - sum(widths))
        self.table(heads, widths, rows, right=(0, 3))

    # -- sections --------------------------------------------------------------------

    def header_block(self) -> None:
        session = self.report["session"]
        self.heading(self.say("report.title"), 16)
        self.heading(_nfc(session.get("title", "")), 12)
        self.fields([
            (self.say("report.field.dossier"), _nfc(session.get("dossier_title", ""))),
            (self.say("report.field.kind"), self.code("kind", str(session.get("kind", "")))),
            (self.say("report.field.mode"), self.code("mode", str(session.get("mode", "")))),
            (self.say("report.field.started"), _date_time(session.get("started_at"))),
            (self.say("report.field.ended"), _date_time(session.get("ended_at"))),
            (self.say("report.field.length"), _duration(session.get("length_s"))),
            (self.say("report.field.generated"), _date_time(self.report.get("generated_at"))),
        ])
        self.pdf.ln(1)
        self.line(self.say("report.timezone"), 8.5, grey=True)
        self.pdf.ln(4)

    def quorum_block(self) -> None:
        quorum = self.report["quorum"]
        rule = quorum.get("rule") or {}
        parts = []
        if rule.get("ratio") is not None:
            percent = self.pct(rule["ratio"] * 100)
            parts.append(self.say("report.quorum.rule_ratio", percent=percent))
        if rule.get("needs_chair"):
            parts.append(self.say("report.quorum.rule_chair"))
        self.heading(self.say("report.quorum.heading"), 12)
        self.line(self.say("report.quorum.rule", rule="; ".join(parts) if parts else self.say(
            "report.quorum.rule_none")))
        if not parts:
            self.pdf.ln(4)
            return
        self.line(self.say("report.quorum.not_met", duration=_duration(quorum.get("not_met_s"))))
        self.pdf.ln(1)
        self.intervals("report.quorum.intervals", quorum.get("not_met") or [])
        self.pdf.ln(2)

    def summary_block(self, people: Sequence[Mapping[str, Any]]) -> None:
        self.heading(self.say("report.summary.heading"), 12)
        if not people:
            self.line(self.say("report.no_participants"), grey=True)
            return
        heads = [self.say(f"report.col.{c}") for c in (
            "name", "role", "connected", "in_room", "absent", "camera_on", "camera_pct",
            "non_compliant")]
        rows = [[
            _nfc(p.get("pseudonym") or p.get("name", "")),
            self.code("role", str(p.get("role", ""))),
            _duration(p.get("connected_s")), _duration(p.get("in_room_s")),
            _duration(p.get("absent_s")), _duration(p.get("camera_on_s")),
            self.pct(p.get("camera_on_pct")), _duration(p.get("non_compliant_s")),
        ] for p in people]
        widths = [44.0, 30.0, 17.0, 17.0, 17.0, 17.0, 15.0]
        widths.append(self.pdf.epw - sum(widths))
        self.table(heads, widths, rows, right=(2, 3, 4, 5, 6, 7))

    def participant_block(self, n: int, p: Mapping[str, Any]) -> None:
        self.pdf.ln(2)
        # A pseudonym is the only name shown (older reports also carried the real one).
        self.heading(f"{n}. {_nfc(p.get('pseudonym') or p.get('name', ''))}", 11, space=40)
        facts = [self.code("role", str(p.get("role", "")))]
        if p.get("pseudonym"):
            facts.append(self.say("report.pseudonymous"))
        facts.append(self.say("report.camera_required." + ("yes" if p.get("camera_required")
                                                         else "no")))
        self.line(" · ".join(facts), grey=True)
        self.pdf.ln(1.5)
        self.intervals("report.detail.connections", p.get("connections") or [], "leave",
                       ends=("joined_at", "left_at"))
        self.intervals("report.detail.gaps", p.get("gaps") or [])
        self.intervals("report.detail.camera_off", p.get("camera_off") or [], "camera_reason")
        self.intervals("report.detail.non_compliant", p.get("non_compliant") or [],
                       "camera_reason")
        self.intervals("report.detail.in_room", p.get("in_room") or [])

    def render(self) -> None:
        people = self.report.get("participants") or []
        self.pdf.set_draw_color(150)
        self.pdf.set_line_width(0.2)
        self.pdf.add_page()
        self.header_block()
        self.quorum_block()
        self.summary_block(people)
        if people:
            self.pdf.add_page()
            self.heading(self.say("report.detail.heading"), 12)
        for n, p in enumerate(people, 1):
            self.participant_block(n, p)


def render_attendance_pdf(
    report: dict[str, Any], text: Callable[[str, Mapping[str, object] | None], str]
) -> bytes:
    """``report`` as an A4 PDF, every label from ``text`` (see the module docstring)."""
    session = report["session"]
    title = text("report.title", None)
    pdf = _Pdf(
        running_head=f"{title} · {_nfc(session.get('title', ''))}",
        footer=lambda page: text("report.page", {"page": page, "pages": "{nb}"}),
    )
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(True, margin=MARGIN)
    pdf.set_title(f"{title} - {_nfc(session.get('title', ''))}")
    pdf.set_lang(str(report.get("language") or "vi"))
    pdf.set_creator("hoidong")
    with ExitStack() as stack:
        fonts = files("font_roboto") / "files"
        for style, name in (("", "Roboto-Regular.ttf"), ("B", "Roboto-Bold.ttf")):
            pdf.add_font(FONT, style, stack.enter_context(as_file(fonts / name)))
        _Renderer(report, text, pdf).render()
        return bytes(pdf.output())
