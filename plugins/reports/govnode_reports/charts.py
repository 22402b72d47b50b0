"""PNG charts of a report, drawn with matplotlib's Agg backend (no display, no pyplot).

Blocking (files, rendering): call `render` through `api.in_thread`. Each
chart is its own `Figure`, never pyplot's global state, so renders in
threads do not meet. DejaVu Sans, shipped with matplotlib, has the Persian
glyphs. Matplotlib built with libraqm (3.11 on) joins Persian letters and
lays them right to left itself; older ones draw glyphs left to right,
unjoined, so there the labels are shaped (`arabic_reshaper`) and put in
visual order (`python-bidi`) first. Doing both would reverse them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import arabic_reshaper  # type: ignore[import-untyped]
from bidi.algorithm import get_display  # type: ignore[import-untyped]
from matplotlib import ft2font
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from govnode_reports.figures import TIME_BINS, ChartData, Row
from govnode_reports.text import Lang, duration_text, jalali_of, number_text, period_text

CHARTS = ("letters-per-week.png", "delivery-reading-times.png", "paper-and-trips-saved.png")
"""The files `render` writes, in its order."""

_COLORS = ("#1b6ca8", "#e0882b", "#3a9c5a", "#b8433f", "#7d5ba6")
_WORDS = {
    "en": {
        "weekly": "Letters sent per week, by the sender's phase",
        "week": "week starting (Saturday)",
        "days": "({days} of 7 days)",
        "letters": "letters",
        "phase": "phase {phase}",
        "times": "Time from registration to delivery and to reading",
        "copies": "share of recipient copies (%)",
        "delivery": "delivery (median {median}, p90 {p90})",
        "reading": "reading (median {median}, p90 {p90})",
        "sheets": "Sheets of paper saved, by phase",
        "trips": "Courier trips saved, by phase",
        "hours": "{hours} courier hours",
        "saved": "Saved by sending letters through the network (by the sender's phase)",
        "phases": "phase",
    },
    "fa": {
        "weekly": "نامه‌های ارسالی در هر هفته، به تفکیک فاز فرستنده",
        "week": "هفته از شنبه",
        "days": "({days} روز از 7)",
        "letters": "نامه",
        "phase": "فاز {phase}",
        "times": "زمان از ثبت تا تحویل و تا خواندن",
        "copies": "سهم نسخه‌های گیرنده (درصد)",
        "delivery": "تحویل (میانه {median}، صدک 90 {p90})",
        "reading": "خواندن (میانه {median}، صدک 90 {p90})",
        "sheets": "برگ کاغذ کمتر مصرف‌شده، به تفکیک فاز",
        "trips": "سفر پیک کمتر، به تفکیک فاز",
        "hours": "{hours} ساعت پیک",
        "saved": "صرفه‌جویی با فرستادن نامه‌ها از راه شبکه (به تفکیک فاز فرستنده)",
        "phases": "فاز",
    },
}


LAYS_OUT_PERSIAN = hasattr(ft2font, "__libraqm_version__")
"""Whether this matplotlib shapes and orders right-to-left text itself (libraqm)."""


def shaped(text: str, lang: Lang, *, lays_out: bool = LAYS_OUT_PERSIAN) -> str:
    """`text` as this matplotlib must be given it: as written when it lays Persian
    out itself, else already joined and in visual (left-to-right) order."""
    if lang != "fa" or lays_out:
        return text
    return str(get_display(arabic_reshaper.reshape(text)))


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _title(figure: Figure, heading: str, data: ChartData, lang: Lang) -> None:
    figure.suptitle(
        shaped(f"{heading}\n{period_text(data.period, lang)}", lang), fontsize=12, linespacing=1.6
    )


def _weekly(data: ChartData, lang: Lang) -> Figure:
    words = _WORDS[lang]
    figure = _figure(max(7.0, 0.55 * len(data.weeks) + 3), 4.8)
    axes = figure.add_subplot()
    positions = list(range(len(data.weeks)))
    bottom = [0] * len(data.weeks)
    for index, (phase, counts) in enumerate(sorted(data.sent_per_week.items())):
        axes.bar(
            positions,
            counts,
            bottom=bottom,
            color=_COLORS[index % len(_COLORS)],
            label=shaped(words["phase"].format(phase=phase), lang),
        )
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    # A week cut by the period's ends shows fewer letters for want of days: say so.
    labels = [
        (jalali_of(week) if lang == "fa" else f"{week:%m-%d}\n{jalali_of(week)[5:]}")
        + ("" if days == 7 else "\n" + shaped(words["days"].format(days=days), lang))
        for week, days in zip(data.weeks, data.week_days, strict=True)
    ]
    axes.set_xticks(positions, labels, rotation=45 if lang == "fa" else 0, fontsize=8)
    axes.set_xlabel(shaped(words["week"], lang))
    axes.set_ylabel(shaped(words["letters"], lang))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(axis="y", alpha=0.3)
    if data.sent_per_week:
        axes.legend()
    _title(figure, words["weekly"], data, lang)
    return figure


def _everyone(data: ChartData) -> Row | None:
    """The row whose medians the time chart quotes: all phases, or the one asked for."""
    summary = data.summary
    return summary.total or (summary.rows[0] if summary.rows else None)


def _share(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [100 * c / total if total else 0.0 for c in counts]


def _times(data: ChartData, lang: Lang) -> Figure:
    words = _WORDS[lang]
    figure = _figure(9.0, 4.8)
    axes = figure.add_subplot()
    row = _everyone(data)
    positions = list(range(len(TIME_BINS)))
    for offset, (kind, counts, color) in enumerate(
        (("delivery", data.delivery_bins, _COLORS[0]), ("reading", data.reading_bins, _COLORS[1]))
    ):
        times = None if row is None else getattr(row.figures, kind)
        label = words[kind].format(
            median=duration_text(times.median if times else None, lang),
            p90=duration_text(times.p90 if times else None, lang),
        )
        axes.bar(
            [p - 0.2 + 0.4 * offset for p in positions],
            _share(counts),
            width=0.4,
            color=color,
            label=shaped(f"{label} n={sum(counts)}", lang),
        )
    names = [shaped(fa, lang) if lang == "fa" else en for _, en, fa in TIME_BINS]
    axes.set_xticks(positions, names, rotation=20, fontsize=8)
    axes.set_ylabel(shaped(words["copies"], lang))
    axes.set_ylim(0, 100)
    axes.grid(axis="y", alpha=0.3)
    axes.legend()
    _title(figure, words["times"], data, lang)
    return figure


def _saved(data: ChartData, lang: Lang) -> Figure:
    words = _WORDS[lang]
    figure = _figure(9.0, 4.4)
    rows = data.summary.rows
    names = [shaped(words["phase"].format(phase=row.key), lang) for row in rows]
    for index, (key, heading, color) in enumerate(
        (
            ("sheets_saved", words["sheets"], _COLORS[2]),
            ("courier_trips_saved", words["trips"], _COLORS[0]),
        )
    ):
        axes = figure.add_subplot(1, 2, index + 1)
        values = [float(getattr(row.figures, key)) for row in rows]
        bars = axes.bar(names, values, color=color)
        if key == "sheets_saved":
            axes.bar_label(bars, labels=[number_text(v) for v in values], fontsize=8)
        else:
            hours = [
                shaped(
                    words["hours"].format(
                        hours=number_text(round(row.figures.courier_hours_saved, 1))
                    ),
                    lang,
                )
                for row in rows
            ]
            axes.bar_label(
                bars,
                labels=[f"{number_text(v)}\n{h}" for v, h in zip(values, hours, strict=True)],
                fontsize=8,
            )
        axes.set_title(shaped(heading, lang), fontsize=10)
        axes.margins(y=0.25)
        axes.grid(axis="y", alpha=0.3)
    _title(figure, words["saved"], data, lang)
    return figure


def render(data: ChartData, out: Path, lang: Lang = "en") -> list[Path]:
    """Write the CHARTS into directory `out` (made when missing); their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in zip(
        CHARTS, (_weekly(data, lang), _times(data, lang), _saved(data, lang)), strict=True
    ):
        path = out / name
        figure.savefig(path, format="png")
        written.append(path)
    return written
