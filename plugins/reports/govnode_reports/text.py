"""Reports as people and spreadsheets read them: aligned tables, CSV, JSON; English or Persian.

English (`en`, the default) writes days both ways, `2026-03-21 (1405/01/01)`;
Persian (`fa`) writes Persian headings and Jalali days, `1405/01/01`, with
Latin digits throughout so that the CSV stays numbers to a spreadsheet.
CSV durations are whole seconds; tables round them for reading.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from govnode.hooks import day_start, jalali_day, jalali_text, rfc3339
from govnode_reports.figures import TEHRAN, Figures, Overdue, Period, Row, Summary

Lang = Literal["en", "fa"]


# -- days, moments, numbers -----------------------------------------------------------


def jalali_of(day: date) -> str:
    """`1405/01/01` for the Gregorian `day` (both name the same Tehran day)."""
    return jalali_day(day_start(day))


def day_text(day: date, lang: Lang) -> str:
    return jalali_of(day) if lang == "fa" else f"{day.isoformat()} ({jalali_of(day)})"


def moment_text(moment: float, lang: Lang) -> str:
    """A moment in Tehran time, to the minute."""
    if lang == "fa":
        return jalali_text(moment)[:16]
    local = datetime.fromtimestamp(moment, UTC).astimezone(TEHRAN)
    return f"{local:%Y-%m-%d %H:%M} ({jalali_day(moment)})"


def period_text(period: Period, lang: Lang) -> str:
    if lang == "fa":
        return f"{day_text(period.first, lang)} تا {day_text(period.last, lang)}"
    return f"{day_text(period.first, lang)} to {day_text(period.last, lang)}"


def number_text(value: float) -> str:
    """`12` for whole numbers, `12.5` otherwise (at most two decimals)."""
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def seconds_text(value: float | None) -> str:
    """A duration for CSV: whole seconds, empty when there is none."""
    return "" if value is None else str(round(value))


_UNITS = {
    "en": ("s", "m", "h", "d"),
    "fa": (" ثانیه", " دقیقه", " ساعت", " روز"),
}


def duration_text(value: float | None, lang: Lang) -> str:
    """A duration for reading: `45s`, `12m`, `3h 05m`, `2d 4h` (`-` when there is none)."""
    if value is None:
        return "-"
    second, minute, hour, day = _UNITS[lang]
    whole = round(value)
    if whole < 60:
        return f"{whole}{second}"
    if whole < 3600:
        return f"{whole // 60}{minute}"
    if whole < 86400:
        return f"{whole // 3600}{hour} {whole % 3600 // 60:02d}{minute}"
    return f"{whole // 86400}{day} {whole % 86400 // 3600}{hour}"


# -- aligned tables ---------------------------------------------------------------------


def _width(text: str) -> int:
    """Columns a terminal gives `text`: joiners and marks (ZWNJ in Persian) take none."""
    return sum(1 for ch in text if unicodedata.category(ch) not in ("Mn", "Cf"))


def aligned(rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell + " " * (width - _width(cell)) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    )


def to_csv(rows: Sequence[Sequence[object]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


# -- the summary ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    """A figure's column: English table heading, CSV name, Persian heading, its value."""

    heading_en: str
    name: str
    heading_fa: str
    value: Callable[[Figures], float | None]
    duration: bool = False
    in_table: bool = True

    def heading(self, lang: Lang) -> str:
        return self.heading_fa if lang == "fa" else self.heading_en

    def table_cell(self, figures: Figures, lang: Lang) -> str:
        value = self.value(figures)
        if self.duration:
            return duration_text(value, lang)
        return "-" if value is None else number_text(value)

    def csv_cell(self, figures: Figures) -> str:
        value = self.value(figures)
        if self.duration:
            return seconds_text(value)
        return "" if value is None else number_text(value)


COLUMNS: tuple[Column, ...] = (
    Column("SENT", "sent", "ارسالی", lambda f: f.sent),
    Column("RECEIVED", "received", "دریافتی", lambda f: f.received),
    Column("DELIVERED", "delivered", "نسخه تحویل‌شده", lambda f: f.delivery.count, in_table=False),
    Column(
        "DELIVERY MEDIAN",
        "delivery_median_s",
        "میانه زمان تحویل",
        lambda f: f.delivery.median,
        duration=True,
    ),
    Column("P90", "delivery_p90_s", "صدک 90 تحویل", lambda f: f.delivery.p90, duration=True),
    Column("READ", "read", "نسخه خوانده‌شده", lambda f: f.reading.count, in_table=False),
    Column(
        "READING MEDIAN",
        "reading_median_s",
        "میانه زمان خواندن",
        lambda f: f.reading.median,
        duration=True,
    ),
    Column("P90", "reading_p90_s", "صدک 90 خواندن", lambda f: f.reading.p90, duration=True),
    Column("REPLY DUE", "replies_due", "پاسخ سررسیده", lambda f: f.replies_due),
    Column(
        "ON TIME", "answered_on_time", "پاسخ به‌موقع", lambda f: f.answered_on_time, in_table=False
    ),
    Column("LATE", "answered_late", "پاسخ دیرهنگام", lambda f: f.answered_late, in_table=False),
    Column("OVERDUE", "overdue", "بی‌پاسخ پس از مهلت", lambda f: f.overdue),
    Column("SHEETS SAVED", "sheets_saved", "برگ کاغذ کمتر", lambda f: f.sheets_saved),
    Column("TRIPS SAVED", "courier_trips_saved", "سفر پیک کمتر", lambda f: f.courier_trips_saved),
    Column(
        "COURIER HOURS",
        "courier_hours_saved",
        "ساعت پیک کمتر",
        lambda f: f.courier_hours_saved,
        in_table=False,
    ),
)
"""Every figure of a row, in the order tables and CSV give them."""

_WORDS = {
    "en": {
        "agency": "AGENCY",
        "phase": "PHASE",
        "all": "all",
        "name": "name",
        "title": "Reports of node {node}, by {by}",
        "period": "Period: {period}, Tehran time (letters registered in it)",
        "as_of": "Reply deadlines as of {moment}",
        "times": "Times from registration to delivery and to reading of each recipient copy: "
        "median and 90th percentile (nearest rank).",
        "paper": "Saved on paper: (delivered copies + {archive} archive) x "
        "({letter} sheets + {attachment} per attachment); "
        "{trips} courier trip(s) of {minutes} min per delivered copy.",
        "none": "(no letters in this period)",
        "only_agency": "Only agency {agency}",
        "only_phase": "Only agencies of phase {phase}",
    },
    "fa": {
        "agency": "دستگاه",
        "phase": "فاز",
        "all": "همه",
        "name": "نام",
        "title": "گزارش گره {node} به تفکیک {by}",
        "period": "دوره: {period} (به وقت تهران، نامه‌های ثبت‌شده در آن)",
        "as_of": "مهلت‌های پاسخ تا {moment}",
        "times": "زمان از ثبت تا تحویل و تا خواندن هر نسخه گیرنده: "
        "میانه و صدک 90 (روش نزدیک‌ترین رتبه).",
        "paper": "صرفه‌جویی کاغذ: (نسخه‌های تحویل‌شده + {archive} نسخه بایگانی) × "
        "({letter} برگ + {attachment} برگ برای هر پیوست)؛ "
        "{trips} سفر پیک {minutes} دقیقه‌ای برای هر نسخه تحویل‌شده.",
        "none": "(در این دوره نامه‌ای نیست)",
        "only_agency": "فقط دستگاه {agency}",
        "only_phase": "فقط دستگاه‌های فاز {phase}",
    },
}


def _rows(summary: Summary) -> list[Row]:
    return [*summary.rows, *([summary.total] if summary.total else [])]


def _key(row: Row, lang: Lang) -> str:
    return _WORDS[lang]["all"] if row.kind == "total" else row.key


def summary_table(summary: Summary, lang: Lang, *, node: str) -> str:
    """The summary for reading: heading lines, the table, how its figures were made."""
    words = _WORDS[lang]
    by = words[summary.by]
    columns = [c for c in COLUMNS if c.in_table]
    heading = [words[summary.by]]
    if summary.by == "agency":
        heading.append(words["phase"])
    heading.extend(c.heading(lang) for c in columns)
    table: list[list[str]] = [heading]
    for row in _rows(summary):
        cells = [_key(row, lang)]
        if summary.by == "agency":
            cells.append("" if row.kind == "total" else str(row.phase))
        cells.extend(c.table_cell(row.figures, lang) for c in columns)
        table.append(cells)
    a = summary.assumptions
    lines = [
        words["title"].format(node=node, by=by.lower() if lang == "en" else by),
        words["period"].format(period=period_text(summary.period, lang)),
        words["as_of"].format(moment=moment_text(summary.as_of, lang)),
    ]
    if summary.agency is not None:
        lines.append(words["only_agency"].format(agency=summary.agency))
    elif summary.phase is not None:
        lines.append(words["only_phase"].format(phase=summary.phase))
    lines += [
        "",
        aligned(table) if len(table) > 1 else words["none"],
        "",
        words["times"],
        words["paper"].format(
            archive=a.archive_copies,
            letter=number_text(a.sheets_per_letter),
            attachment=number_text(a.sheets_per_attachment),
            trips=number_text(a.courier_trips_per_recipient),
            minutes=number_text(a.minutes_per_trip),
        ),
    ]
    return "\n".join(lines) + "\n"


def summary_csv(summary: Summary, lang: Lang) -> str:
    """The summary for spreadsheets: one row per agency or phase (and `all`), every figure."""
    words = _WORDS[lang]
    if lang == "fa":
        heading = [words[summary.by], words["name"], words["phase"], "از", "تا"]
    else:
        heading = [summary.by, "name", "phase", "from", "to", "from_jalali", "to_jalali"]
    if summary.by == "phase":
        del heading[1:3]
    heading.extend(c.heading_fa if lang == "fa" else c.name for c in COLUMNS)
    first, last = summary.period.first, summary.period.last
    if lang == "fa":
        bounds = [jalali_of(first), jalali_of(last)]
    else:
        bounds = [first.isoformat(), last.isoformat(), jalali_of(first), jalali_of(last)]
    rows: list[list[str]] = [heading]
    for row in _rows(summary):
        cells = [_key(row, lang)]
        if summary.by == "agency":
            name = row.name_fa if lang == "fa" else row.name_en
            cells.extend([name, "" if row.phase is None else str(row.phase)])
        cells.extend(bounds)
        cells.extend(c.csv_cell(row.figures) for c in COLUMNS)
        rows.append(cells)
    return to_csv(rows)


def figures_json(figures: Figures) -> dict[str, Any]:
    """One row's figures as JSON (durations in seconds, null when there are none)."""
    return {c.name: c.value(figures) for c in COLUMNS}


# -- overdue letters ----------------------------------------------------------------------

_OVERDUE = {
    "en": ("NUMBER", "SENDER", "RECIPIENT", "REPLY BY (TEHRAN)", "DAYS OVERDUE"),
    "fa": ("شماره", "فرستنده", "گیرنده", "مهلت پاسخ", "روز تأخیر"),
}


def overdue_table(found: Sequence[Overdue], lang: Lang, *, as_of: float) -> str:
    if lang == "fa":
        title = f"نامه‌های بی‌پاسخ پس از مهلت، تا {moment_text(as_of, lang)}: {len(found)}"
    else:
        title = f"Letters unanswered past their reply deadline, as of {moment_text(as_of, lang)}: "
        title += str(len(found))
    if not found:
        return title + "\n"
    rows = [list(_OVERDUE[lang])]
    rows.extend(
        [o.number, o.sender, o.recipient, moment_text(o.reply_by, lang), str(o.days_overdue)]
        for o in found
    )
    return f"{title}\n\n{aligned(rows)}\n"


def overdue_csv(found: Sequence[Overdue], lang: Lang) -> str:
    if lang == "fa":
        heading = ["شناسه", *_OVERDUE["fa"]]
        rows = [
            [o.letter_id, o.number, o.sender, o.recipient, jalali_text(o.reply_by), o.days_overdue]
            for o in found
        ]
    else:
        heading = ["letter_id", "number", "sender", "recipient", "reply_by", "reply_by_jalali"]
        heading.append("days_overdue")
        rows = [
            [
                o.letter_id,
                o.number,
                o.sender,
                o.recipient,
                rfc3339(o.reply_by),
                jalali_text(o.reply_by),
                o.days_overdue,
            ]
            for o in found
        ]
    return to_csv([heading, *rows])
