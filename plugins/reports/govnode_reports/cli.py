"""`govnode reports summary|chart|overdue`: the reports on the command line.

Each command runs as `run(api, args)` on the CLI's reactor: it reads through
the `NodeApi`, computes and renders in a thread (`api.in_thread`), and
prints or writes files. A wrong option is a `CommandError` naming it (exit 2),
as argparse does for a day that is no date.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from govnode.hooks import BadDate, CommandError, NodeApi, day_start, parse_day
from govnode_reports import figures, text
from govnode_reports.figures import Assumptions, Period, PeriodError
from govnode_reports.gather import gather, letters_between

Settings = Callable[[], Assumptions]

_DAY_HELP = "a day, Jalali (1405/01/01) or Gregorian (2026-03-21), Tehran time"


def _day(value: str) -> date:
    """argparse's type for days: its error names the option (`argument --from: ...`)."""
    try:
        return parse_day(value)
    except BadDate as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _period(args: argparse.Namespace) -> Period:
    try:
        return figures.checked_period(args.first, args.last)
    except PeriodError:
        raise CommandError(
            f"--from {text.day_text(args.first, 'en')} is after "
            f"--to {text.day_text(args.last, 'en')}: the period must start before it ends",
            2,
        ) from None


async def _check_filters(api: NodeApi, args: argparse.Namespace) -> None:
    """`--agency` and `--phase` must name something in the directory."""
    agencies = await api.agencies()
    code = getattr(args, "agency", None)
    if code is not None and all(a.code != args.agency for a in agencies):
        raise CommandError(
            f"--agency: no agency {code!r} in the directory of node {api.node_id} "
            "(govnode agency list)",
            2,
        )
    phase = getattr(args, "phase", None)
    if phase is not None and all(a.phase != phase for a in agencies):
        phases = ", ".join(str(p) for p in sorted({a.phase for a in agencies}))
        raise CommandError(f"--phase: no agency of phase {phase} (phases: {phases})", 2)


async def _emit(api: NodeApi, content: str, out: Path | None) -> None:
    """Print `content`, or write it to `out` (UTF-8) and say so."""
    if out is None:
        sys.stdout.write(content)
        return
    try:
        await api.in_thread(out.write_text, content, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"--out: cannot write {out}: {exc.strerror}") from None
    print(f"wrote {out}")


async def run_summary(api: NodeApi, args: argparse.Namespace, *, settings: Settings) -> int:
    period = _period(args)
    await _check_filters(api, args)
    assumptions = settings()
    material = await gather(api, period, assumptions, agency=args.agency)
    summary = await api.in_thread(
        figures.summarize,
        material.letters,
        material.agencies,
        period,
        assumptions,
        as_of=material.as_of,
        by=args.by,
        agency=args.agency,
        phase=args.phase,
        attachments=material.attachments,
    )
    if args.format == "csv":
        content = text.summary_csv(summary, args.lang)
    else:
        content = text.summary_table(summary, args.lang, node=api.node_id)
    await _emit(api, content, args.out)
    return 0


async def run_chart(api: NodeApi, args: argparse.Namespace, *, settings: Settings) -> int:
    period = _period(args)
    await _check_filters(api, args)
    assumptions = settings()
    material = await gather(api, period, assumptions)
    data = await api.in_thread(
        figures.chart_data,
        material.letters,
        material.agencies,
        period,
        assumptions,
        as_of=material.as_of,
        phase=args.phase,
        attachments=material.attachments,
    )
    from govnode_reports import charts  # matplotlib: loaded only for charts, not every command

    try:
        written = await api.in_thread(charts.render, data, args.out, args.lang)
    except OSError as exc:
        raise CommandError(
            f"--out: cannot write charts into {args.out}: {exc.strerror or exc}"
        ) from None
    for path in written:
        print(f"wrote {path}")
    return 0


async def run_overdue(api: NodeApi, args: argparse.Namespace) -> int:
    if args.first is not None and args.last is not None:
        _period(args)
    await _check_filters(api, args)
    since = None if args.first is None else day_start(args.first)
    until = None if args.last is None else Period(args.last, args.last).end
    letters = await letters_between(api, since, until, agency=args.agency)
    as_of = api.now()
    address = None if args.agency is None else f"{args.agency}@{api.node_id}"
    found = await api.in_thread(figures.overdue_letters, letters, as_of=as_of, address=address)
    if args.format == "csv":
        content = text.overdue_csv(found, args.lang)
    else:
        content = text.overdue_table(found, args.lang, as_of=as_of)
    await _emit(api, content, args.out)
    return 0


def _options(
    parser: argparse.ArgumentParser, *, output: bool, agency: bool = True, required: bool = True
) -> None:
    parser.add_argument(
        "--from", dest="first", type=_day, required=required, metavar="DAY", help=_DAY_HELP
    )
    parser.add_argument(
        "--to", dest="last", type=_day, required=required, metavar="DAY", help="the last day, whole"
    )
    if agency:
        parser.add_argument("--agency", metavar="CODE", help="only this agency")
    if output:
        parser.add_argument("--format", choices=("table", "csv"), default="table")
        parser.add_argument("--out", type=Path, metavar="FILE", help="write here, not stdout")
    parser.add_argument(
        "--lang",
        choices=("en", "fa"),
        default="en",
        help="en: English, days Gregorian and Jalali (default); fa: Persian, Jalali days",
    )


def add_commands(commands: Any, settings: Settings) -> None:
    """`govnode reports ...`; `settings()` gives the assumptions at run time."""
    reports = commands.add_parser(
        "reports",
        help="letters sent and received, delivery and reading times, overdue replies, "
        "paper and courier trips saved",
    )
    sub = reports.add_subparsers(dest="reports_command", required=True, metavar="REPORT")

    summary = sub.add_parser("summary", help="figures per agency or phase for a period")
    _options(summary, output=True)
    summary.add_argument("--by", choices=("agency", "phase"), default="agency")
    summary.add_argument("--phase", type=int, metavar="N", help="only agencies of phase N")
    summary.set_defaults(run=partial(run_summary, settings=settings))

    chart = sub.add_parser("chart", help="PNG charts for a period, into a directory")
    _options(chart, output=False, agency=False)
    chart.add_argument("--out", type=Path, required=True, metavar="DIR")
    chart.add_argument("--phase", type=int, metavar="N", help="only agencies of phase N")
    chart.set_defaults(run=partial(run_chart, settings=settings))

    overdue = sub.add_parser(
        "overdue", help="letters whose reply deadline passed without an answer, as of now"
    )
    _options(overdue, output=True, required=False)
    overdue.set_defaults(run=run_overdue)
