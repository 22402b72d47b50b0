"""The reports on a real node home: a known set of letters, every figure by hand.

The letters are sent through an in-process `NodeApi` whose clock is a
`task.Clock` set to chosen moments (registration, reading, answers). A few
recipient copies are then made to arrive later than they were registered,
as a relayed letter's would, and one letter gets two attachments, through
the store. The figures are then checked three ways: computed in-process,
printed by `govnode reports ...` as a subprocess, and answered by the API
route of a running node.

The letters (T0 = 1405/08/05 09:00 Tehran = 2026-10-27; H = one hour):

    L7  T0-4d-9h30m  edu → welfare                        before the period;
                     reply_by 2026-10-25T12:00Z, never answered
    L1  T0           edu → to welfare, edu-dena; cc ostandari; 2 attachments;
                     reply_by 1405/08/10. welfare: delivered +2H, read +5H,
                     answered +30H (L4); edu-dena: read +50H, never answered;
                     ostandari: read +1H
    L2  T0+24H       welfare → edu; reply_by 1405/08/07 (end of 2026-10-29).
                     edu: delivered +30min, read +10H, answered +96H (L5): late
    L4  T0+30H       welfare → edu, the answer to L1. edu: read +1H
    L3  T0+48H       ostandari → edu, welfare, edu-dena. edu: delivered +1H,
                     read +3H; welfare: read +20H; edu-dena: delivered +6H
    L6  T0+72H       muni-sisakht → edu-yasuj-1; reply_by 2099-01-01 (not due).
                     edu-yasuj-1: read +4H
    L5  T0+120H      edu → welfare, the answer to L2. welfare: delivered +15min
    L8  end-1s       welfare → to edu-yasuj-1; cc muni-sisakht  (last second)
    L9  end          welfare → edu  (the first second after the period)

The period is 1405/08/01..1405/08/30 = 2026-10-23..2026-11-21; `end` is
1405/09/01 00:00 Tehran. Phases: edu, welfare, ostandari 1; muni-sisakht 2;
edu-dena, edu-yasuj-1 3. Assumptions: 2 sheets per letter, 3 per
attachment, 1 archive copy, 1 courier trip of 30 min per delivered copy.
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import pytest
import pytest_twisted
from govnode_reports import figures
from govnode_reports.figures import Figures, Overdue, Period, Times
from govnode_reports.gather import gather, letters_between
from govnode_reports.plugin import plugin
from PIL import Image
from sqlalchemy import insert, update
from twisted.internet import defer, task
from twisted.internet import reactor as default_reactor

from govnode.hooks import NodeApi, day_start, parse_day
from govnode.hooks.manager import load_plugins
from govnode.store.database import Database
from govnode.store.schema import attachments, recipients
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, client_for, make_plugin_node_home
from govnode.testing.slapd import Slapd

reactor: Any = default_reactor
H = 3600.0
M = 60.0
T0 = day_start(date(2026, 10, 27)) + 9 * H
END = day_start(date(2026, 11, 22))  # 1405/09/01 00:00 Tehran
AS_OF = day_start(date(2026, 11, 25)) + 12 * H  # 1405/09/04 12:00 Tehran
SETTINGS = {
    "sheets_per_letter": 2,
    "sheets_per_attachment": 3,
    "archive_copies": 1,
    "courier_trips_per_recipient": 1,
    "minutes_per_trip": 30,
}
ENROLLED = ("edu",)
TEHRAN = ZoneInfo("Asia/Tehran")
T = TypeVar("T")


def twisted_test(test: T) -> T:
    """`pytest_twisted.ensureDeferred`, typed (pytest_twisted has no annotations)."""
    return cast(T, pytest_twisted.ensureDeferred(test))


@dataclass(frozen=True)
class Province:
    home: NodeHome
    ids: dict[str, str]  # L1... → letter id
    numbers: dict[str, str]  # L1... → registration number


def _kb(code: str) -> str:
    return f"{code}@kb"


async def _send_the_letters(
    api: NodeApi, clock: task.Clock, db: Database
) -> tuple[dict[str, str], dict[str, str]]:
    ids: dict[str, str] = {}
    numbers: dict[str, str] = {}

    async def send(name: str, at: float, sender: str, to: list[str], **more: Any) -> None:
        clock.rightNow = at
        if "in_reply_to" in more:
            more["in_reply_to"] = ids[more["in_reply_to"]]
        sent = await api.send_letter(
            plugin="reports-test", sender=sender, to=to, subject=f"letter {name}", **more
        )
        ids[name], numbers[name] = sent.id, sent.number

    async def read(name: str, at: float, code: str) -> None:
        clock.rightNow = at
        assert await api.mark_read(code, ids[name], on_behalf_by=_kb(code)) is not None

    # In the order of time: reading and answering happen at the clock's moment.
    await send("L7", T0 - 4 * 24 * H - 9.5 * H, "edu", ["welfare"], reply_by="2026-10-25T12:00:00Z")
    await send("L1", T0, "edu", ["welfare", "edu-dena"], cc=["ostandari"], reply_by="1405/08/10")
    await read("L1", T0 + 1 * H, "ostandari")
    await read("L1", T0 + 5 * H, "welfare")
    await send("L2", T0 + 24 * H, "welfare", ["edu"], reply_by="1405/08/07")
    await send("L4", T0 + 30 * H, "welfare", ["edu"], in_reply_to="L1")
    await read("L4", T0 + 31 * H, "edu")
    await read("L2", T0 + 34 * H, "edu")
    await send("L3", T0 + 48 * H, "ostandari", ["edu", "welfare", "edu-dena"])
    await read("L1", T0 + 50 * H, "edu-dena")
    await read("L3", T0 + 51 * H, "edu")
    await send("L6", T0 + 72 * H, "muni-sisakht", ["edu-yasuj-1"], reply_by="2099-01-01")
    await read("L3", T0 + 68 * H, "welfare")
    await read("L6", T0 + 76 * H, "edu-yasuj-1")
    await send("L5", T0 + 120 * H, "edu", ["welfare"], in_reply_to="L2")
    await send("L8", END - 1, "welfare", ["edu-yasuj-1"], cc=["muni-sisakht"])
    await send("L9", END, "welfare", ["edu"])

    # Copies that arrived later than registered (as a relayed letter's do), and
    # L1's two attachments: through the store, as the API would have written them.
    later = {
        ("L1", "welfare"): T0 + 2 * H,
        ("L2", "edu"): T0 + 24 * H + 30 * M,
        ("L3", "edu"): T0 + 49 * H,
        ("L3", "edu-dena"): T0 + 54 * H,
        ("L5", "welfare"): T0 + 120 * H + 15 * M,
    }

    def adjust(conn: Any) -> None:
        for (name, code), at in later.items():
            conn.execute(
                update(recipients)
                .where(recipients.c.letter_id == ids[name], recipients.c.address == _kb(code))
                .values(delivered_at=at)
            )
        for position in range(2):
            conn.execute(
                insert(attachments).values(
                    letter_id=ids["L1"],
                    position=position,
                    filename=f"annex-{position}.pdf",
                    content_type="application/pdf",
                    size=1000,
                    sha256=f"{position:064d}",
                )
            )

    await db.run(adjust)
    clock.rightNow = AS_OF
    return ids, numbers


@dataclass
class InProcess:
    api: NodeApi
    clock: task.Clock
    db: Database


@pytest.fixture(scope="module")
def province(
    tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd
) -> Iterator[tuple[Province, InProcess]]:
    home = make_plugin_node_home(
        tmp_path_factory.mktemp("reports"), govnode_slapd, {"reports": SETTINGS}, ENROLLED
    )
    db = Database(home.config.database.url, reactor=reactor)
    db.start()
    clock = task.Clock()
    api = NodeApi(
        config=home.config, db=db, plugins=load_plugins(home.config), reactor=reactor, clock=clock
    )
    try:
        sending = defer.Deferred.fromCoroutine(_send_the_letters(api, clock, db))
        ids, numbers = pytest_twisted.blockon(sending)
        yield Province(home, ids, numbers), InProcess(api, clock, db)
    finally:
        db.stop()


# -- the figures, by hand ------------------------------------------------------------------


def fig(**values: Any) -> Figures:
    return Figures(**values)


NONE = Times(0, None, None)
BY_AGENCY = {
    "edu": fig(
        sent=2,  # L1, L5
        received=3,  # L2, L4, L3
        delivery=Times(3, 30 * M, 1 * H),  # [0 (L4), 30m (L2), 1h (L3)]
        reading=Times(3, 3 * H, 10 * H),  # [1h (L4), 3h (L3), 10h (L2)]
        replies_due=1,  # L2
        answered_late=1,  # L5 came after the end of 1405/08/07
        sheets_saved=36.0,  # L1: (3 + 1) * (2 + 3 * 2) = 32; L5: (1 + 1) * 2 = 4
        courier_trips_saved=4.0,  # L1: 3, L5: 1
        courier_hours_saved=2.0,  # 4 trips * 30 min
    ),
    "edu-dena": fig(
        received=2,  # L1, L3
        delivery=Times(2, 0.0, 6 * H),  # [0 (L1), 6h (L3)]
        reading=Times(1, 50 * H, 50 * H),  # L1; L3 never read
        replies_due=1,  # L1
        overdue=1,
    ),
    "edu-yasuj-1": fig(
        received=2,  # L6, L8
        delivery=Times(2, 0.0, 0.0),
        reading=Times(1, 4 * H, 4 * H),  # L6
    ),
    "muni-sisakht": fig(
        sent=1,  # L6
        received=1,  # L8 (cc)
        delivery=Times(1, 0.0, 0.0),
        reading=NONE,
        sheets_saved=4.0,  # (1 + 1) * 2
        courier_trips_saved=1.0,
        courier_hours_saved=0.5,
    ),
    "ostandari": fig(
        sent=1,  # L3
        received=1,  # L1 (cc: owes no answer)
        delivery=Times(1, 0.0, 0.0),
        reading=Times(1, 1 * H, 1 * H),
        sheets_saved=8.0,  # (3 + 1) * 2
        courier_trips_saved=3.0,
        courier_hours_saved=1.5,
    ),
    "welfare": fig(
        sent=3,  # L2, L4, L8 (L9 is after the period)
        received=3,  # L1, L3, L5 (L7 is before it)
        delivery=Times(3, 15 * M, 2 * H),  # [0 (L3), 15m (L5), 2h (L1)]
        reading=Times(2, 5 * H, 20 * H),  # [5h (L1), 20h (L3)]
        replies_due=1,  # L1
        answered_on_time=1,  # L4, 30h after L1
        sheets_saved=14.0,  # L2: 4, L4: 4, L8: (2 + 1) * 2 = 6
        courier_trips_saved=4.0,
        courier_hours_saved=2.0,
    ),
}
BY_PHASE = {
    "1": fig(  # edu, welfare, ostandari
        sent=6,
        received=5,  # L1, L2, L4, L3, L5
        delivery=Times(7, 15 * M, 2 * H),  # [0, 0, 0, 15m, 30m, 1h, 2h]: 4th and 7th
        reading=Times(6, 3 * H, 20 * H),  # [1h, 1h, 3h, 5h, 10h, 20h]: 3rd and 6th
        replies_due=2,
        answered_on_time=1,
        answered_late=1,
        sheets_saved=58.0,
        courier_trips_saved=11.0,
        courier_hours_saved=5.5,
    ),
    "2": BY_AGENCY["muni-sisakht"],
    "3": fig(  # edu-dena, edu-yasuj-1
        received=4,  # L1, L3, L6, L8
        delivery=Times(4, 0.0, 6 * H),  # [0, 0, 0, 6h]: 2nd and 4th
        reading=Times(2, 4 * H, 50 * H),
        replies_due=1,
        overdue=1,
    ),
}
TOTAL = fig(
    sent=7,  # L1..L8 but L7
    received=7,
    delivery=Times(12, 0.0, 2 * H),  # 7 zeros, 15m, 30m, 1h, 2h, 6h: 6th and 11th
    reading=Times(8, 4 * H, 50 * H),  # [1, 1, 3, 4, 5, 10, 20, 50] h: 4th and 8th
    replies_due=3,
    answered_on_time=1,
    answered_late=1,
    overdue=1,
    sheets_saved=62.0,
    courier_trips_saved=12.0,
    courier_hours_saved=6.0,
)
PERIODS = (("1405/08/01", "1405/08/30"), ("2026-10-23", "2026-11-21"))


def test_the_period_is_the_same_both_ways() -> None:
    jalali, gregorian = (figures.period_of(*bounds) for bounds in PERIODS)
    assert jalali == gregorian == Period(date(2026, 10, 23), date(2026, 11, 21))
    assert jalali.end == END  # the last day counts whole, up to 1405/09/01 00:00 Tehran


@twisted_test
async def test_every_figure_per_agency_and_per_phase(
    province: tuple[Province, InProcess],
) -> None:
    made, node = province
    assert plugin.assumptions == figures.Assumptions(2.0, 3.0, 1, 1.0, 30.0)
    assert node.api.now() == AS_OF
    for bounds in PERIODS:
        period = figures.period_of(*bounds)
        material = await gather(node.api, period, plugin.assumptions)
        assert material.as_of == AS_OF
        assert {made.ids["L1"]: 2} == {k: v for k, v in material.attachments.items() if v}
        by_agency = figures.summarize(
            material.letters,
            material.agencies,
            period,
            plugin.assumptions,
            as_of=material.as_of,
            attachments=material.attachments,
        )
        assert {row.key: row.figures for row in by_agency.rows} == BY_AGENCY, bounds
        assert [row.key for row in by_agency.rows] == sorted(BY_AGENCY)
        assert [row.phase for row in by_agency.rows] == [1, 3, 3, 2, 1, 1]
        assert by_agency.total is not None
        assert by_agency.total.figures == TOTAL
        by_phase = figures.summarize(
            material.letters,
            material.agencies,
            period,
            plugin.assumptions,
            as_of=material.as_of,
            by="phase",
            attachments=material.attachments,
        )
        assert {row.key: row.figures for row in by_phase.rows} == BY_PHASE, bounds
        assert by_phase.total is not None
        assert by_phase.total.figures == TOTAL
        one_phase = figures.summarize(
            material.letters,
            material.agencies,
            period,
            plugin.assumptions,
            as_of=material.as_of,
            phase=3,
            attachments=material.attachments,
        )
        assert {row.key: row.figures for row in one_phase.rows} == {
            code: BY_AGENCY[code] for code in ("edu-dena", "edu-yasuj-1")
        }
        assert one_phase.total is not None
        assert one_phase.total.figures == BY_PHASE["3"]


@twisted_test
async def test_one_agency_reads_only_its_own_letters(
    province: tuple[Province, InProcess],
) -> None:
    _, node = province
    period = figures.period_of(*PERIODS[0])
    for code in ("edu", "edu-dena", "welfare"):
        material = await gather(node.api, period, plugin.assumptions, agency=code)
        summary = figures.summarize(
            material.letters,
            material.agencies,
            period,
            plugin.assumptions,
            as_of=material.as_of,
            agency=code,
            attachments=material.attachments,
        )
        assert [(row.key, row.figures) for row in summary.rows] == [(code, BY_AGENCY[code])]
        assert summary.total is None


@twisted_test
async def test_overdue_copies_most_overdue_first(province: tuple[Province, InProcess]) -> None:
    made, node = province
    letters = await letters_between(node.api, None, None)
    l7 = Overdue(
        made.ids["L7"],
        made.numbers["L7"],
        _kb("edu"),
        _kb("welfare"),
        datetime(2026, 10, 25, 12, tzinfo=UTC).timestamp(),
        31,  # 1405/08/03 (15:30 Tehran) to 1405/09/04
    )
    l1 = Overdue(
        made.ids["L1"],
        made.numbers["L1"],
        _kb("edu"),
        _kb("edu-dena"),
        day_start(parse_day("1405/08/11")) - 1,  # the end of 1405/08/10 in Tehran
        24,  # 1405/08/10 to 1405/09/04
    )
    assert figures.overdue_letters(letters, as_of=AS_OF) == [l7, l1]
    assert figures.overdue_letters(letters, as_of=AS_OF, address=_kb("edu-dena")) == [l1]
    assert figures.overdue_letters(letters, as_of=AS_OF, address=_kb("welfare")) == [l7]
    # A day after L1, before its deadline: only L7 was overdue (1405/08/03 to 1405/08/06).
    assert figures.overdue_letters(letters, as_of=T0 + 24 * H) == [
        Overdue(l7.letter_id, l7.number, l7.sender, l7.recipient, l7.reply_by, 3)
    ]


# -- the command line ------------------------------------------------------------------------


def govnode(home: NodeHome, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "govnode.cli.main", "--home", str(home.path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def table_rows(output: str) -> dict[str, list[str]]:
    """The rows of a printed table by their first cell (cells are two spaces or more apart)."""
    lines = output.split("\n\n")[1].splitlines()
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", line.strip()) for line in lines)}


def today_in_tehran() -> date:
    return datetime.now(TEHRAN).date()


def test_summary_table_in_english(province: tuple[Province, InProcess]) -> None:
    made, _ = province
    done = govnode(made.home, "reports", "summary", "--from", "1405/08/01", "--to", "1405/08/30")
    assert done.returncode == 0, done.stderr
    assert "Period: 2026-10-23 (1405/08/01) to 2026-11-21 (1405/08/30)" in done.stdout
    rows = table_rows(done.stdout)
    assert rows["AGENCY"][:4] == ["AGENCY", "PHASE", "SENT", "RECEIVED"]
    assert list(rows)[1:] == [*sorted(BY_AGENCY), "all"]
    # SENT RECEIVED, delivery median p90, reading median p90, REPLY DUE OVERDUE, SHEETS TRIPS
    assert rows["edu"] == [
        *("edu", "1", "2", "3"),
        *("30m", "1h 00m", "3h 00m", "10h 00m"),
        *("1", "0", "36", "4"),
    ]
    assert rows["edu-dena"][2:] == ["0", "2", "0s", "6h 00m", "2d 2h", "2d 2h", "1", "1", "0", "0"]
    assert rows["muni-sisakht"][4:8] == ["0s", "0s", "-", "-"]
    assert rows["all"] == ["all", "7", "7", "0s", "2h 00m", "4h 00m", "2d 2h", "3", "1", "62", "12"]
    assert "(delivered copies + 1 archive) x (2 sheets + 3 per attachment)" in done.stdout


def test_summary_csv_is_the_same_for_both_calendars(
    province: tuple[Province, InProcess], tmp_path: Path
) -> None:
    made, _ = province
    out = tmp_path / "phases.csv"
    by_phase = ("reports", "summary", "--by", "phase", "--format", "csv")
    written = govnode(
        made.home, *by_phase, "--from", "2026-10-23", "--to", "2026-11-21", "--out", str(out)
    )
    assert written.returncode == 0, written.stderr
    printed = govnode(made.home, *by_phase, "--from", "1405/08/01", "--to", "1405/08/30")
    assert printed.returncode == 0, printed.stderr
    content = out.read_text(encoding="utf-8")
    assert printed.stdout == content
    rows = {row["phase"]: row for row in csv.DictReader(io.StringIO(content))}
    assert list(rows) == ["1", "2", "3", "all"]
    expected = {**BY_PHASE, "all": TOTAL}
    for key, row in rows.items():
        f = expected[key]
        assert (row["from"], row["to"]) == ("2026-10-23", "2026-11-21")
        assert (row["from_jalali"], row["to_jalali"]) == ("1405/08/01", "1405/08/30")
        assert {
            name: row[name]
            for name in row
            if name not in ("phase", "from", "to", "from_jalali", "to_jalali")
        } == {
            "sent": str(f.sent),
            "received": str(f.received),
            "delivered": str(f.delivery.count),
            "delivery_median_s": "" if f.delivery.median is None else str(round(f.delivery.median)),
            "delivery_p90_s": "" if f.delivery.p90 is None else str(round(f.delivery.p90)),
            "read": str(f.reading.count),
            "reading_median_s": "" if f.reading.median is None else str(round(f.reading.median)),
            "reading_p90_s": "" if f.reading.p90 is None else str(round(f.reading.p90)),
            "replies_due": str(f.replies_due),
            "answered_on_time": str(f.answered_on_time),
            "answered_late": str(f.answered_late),
            "overdue": str(f.overdue),
            "sheets_saved": f"{f.sheets_saved:g}",
            "courier_trips_saved": f"{f.courier_trips_saved:g}",
            "courier_hours_saved": f"{f.courier_hours_saved:g}",
        }, key
    assert rows["1"]["delivery_median_s"] == "900"  # 15 min, by hand above
    assert rows["all"]["reading_p90_s"] == "180000"  # 50 h


def test_persian_output_has_jalali_days(province: tuple[Province, InProcess]) -> None:
    made, _ = province
    period = ("--from", "2026-10-23", "--to", "1405/08/30", "--lang", "fa")
    table = govnode(made.home, "reports", "summary", *period, "--agency", "edu-dena")
    assert table.returncode == 0, table.stderr
    assert "دوره: 1405/08/01 تا 1405/08/30" in table.stdout
    assert "2026-" not in table.stdout
    assert "فقط دستگاه edu-dena" in table.stdout
    rows = table_rows(table.stdout)
    assert list(rows) == ["دستگاه", "edu-dena"]  # one agency: no total
    assert rows["edu-dena"][4:8] == ["0 ثانیه", "6 ساعت 00 دقیقه", "2 روز 2 ساعت", "2 روز 2 ساعت"]
    spreadsheet = govnode(
        made.home, "reports", "summary", *period, "--format", "csv", "--by", "phase"
    )
    assert spreadsheet.returncode == 0, spreadsheet.stderr
    (first, *_) = csv.DictReader(io.StringIO(spreadsheet.stdout))
    assert (first["فاز"], first["از"], first["تا"], first["ارسالی"]) == (
        "1",
        "1405/08/01",
        "1405/08/30",
        "6",
    )


def test_overdue_lists_who_owes_an_answer(province: tuple[Province, InProcess]) -> None:
    made, _ = province
    today = today_in_tehran()
    done = govnode(made.home, "reports", "overdue")
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout)
    assert list(rows) == ["NUMBER", made.numbers["L7"], made.numbers["L1"]]
    assert rows[made.numbers["L7"]][1:] == [
        "edu@kb",
        "welfare@kb",
        "2026-10-25 15:30 (1405/08/03)",
        str((today - date(2026, 10, 25)).days),
    ]
    assert rows[made.numbers["L1"]][1:] == [
        "edu@kb",
        "edu-dena@kb",
        "2026-11-01 23:59 (1405/08/10)",
        str((today - date(2026, 11, 1)).days),
    ]
    persian = govnode(
        made.home, "reports", "overdue", "--agency", "edu-dena", "--lang", "fa", "--format", "csv"
    )
    assert persian.returncode == 0, persian.stderr
    assert list(csv.DictReader(io.StringIO(persian.stdout))) == [
        {
            "شناسه": made.ids["L1"],
            "شماره": made.numbers["L1"],
            "فرستنده": "edu@kb",
            "گیرنده": "edu-dena@kb",
            "مهلت پاسخ": "1405/08/10 23:59:59",
            "روز تأخیر": str((today - date(2026, 11, 1)).days),
        }
    ]


def test_charts_are_pngs_worth_looking_at(
    province: tuple[Province, InProcess], tmp_path: Path
) -> None:
    made, _ = province
    for lang in ("en", "fa"):
        out = tmp_path / lang
        done = govnode(
            made.home,
            "reports",
            "chart",
            "--from",
            "1405/08/01",
            "--to",
            "2026-11-21",
            "--out",
            str(out),
            "--lang",
            lang,
        )
        assert done.returncode == 0, done.stderr
        names = sorted(path.name for path in out.iterdir())
        assert names == sorted(
            ["letters-per-week.png", "delivery-reading-times.png", "paper-and-trips-saved.png"]
        )
        for name in names:
            with Image.open(out / name) as image:
                assert image.format == "PNG"
                assert image.width >= 700, (name, image.size)
                assert image.height >= 400, (name, image.size)
                colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
                assert colours is None or len(colours) > 20, f"{name} looks blank"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--from", "1405/13/40", "--to", "1405/08/30"),
            "argument --from: '1405/13/40' is not a date: write 1405/09/03 (Jalali) or 2026-11-24",
        ),
        (
            ("--from", "1405/08/01", "--to", "2026-02-30"),
            "argument --to: '2026-02-30' is not a date",
        ),
        (
            ("--from", "1405-08-01", "--to", "1405/08/30"),
            "argument --from: '1405-08-01' mixes the calendars' forms",
        ),
        (
            ("--from", "1405/08/30", "--to", "1405/08/01"),
            "--from 2026-11-21 (1405/08/30) is after --to 2026-10-23 (1405/08/01)",
        ),
        (
            ("--from", "1405/08/01", "--to", "1405/08/30", "--agency", "nobody"),
            "--agency: no agency 'nobody' in the directory of node kb",
        ),
        (
            ("--from", "1405/08/01", "--to", "1405/08/30", "--phase", "9"),
            "--phase: no agency of phase 9",
        ),
    ],
)
def test_bad_options_are_named(
    province: tuple[Province, InProcess], args: tuple[str, ...], message: str
) -> None:
    made, _ = province
    done = govnode(made.home, "reports", "summary", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_a_wrong_setting_names_its_key(province: tuple[Province, InProcess]) -> None:
    made, _ = province
    path = made.home.path / "govnode.toml"
    original = path.read_text(encoding="utf-8")
    try:
        for written, wrong, message in (
            (
                "minutes_per_trip = 30",
                "minutes_per_trip = -5",
                "plugins.reports.minutes_per_trip: must be between 0 and 1440, not -5",
            ),
            (
                "sheets_per_letter = 2",
                'sheets_per_letter = "two"',
                "plugins.reports.sheets_per_letter: must be a number, not str 'two'",
            ),
            (
                "archive_copies = 1",
                "archive_copies = 1.5",
                "plugins.reports.archive_copies: must be a whole number",
            ),
            ("sheets_per_letter = 2", "sheets_per_leter = 2", "plugins.reports.sheets_per_leter"),
        ):
            assert written in original
            path.write_text(original.replace(written, wrong), encoding="utf-8")
            refused = govnode(
                made.home, "reports", "summary", "--from", "1405/08/01", "--to", "1405/08/30"
            )
            assert refused.returncode != 0
            assert message in refused.stderr
    finally:
        path.write_text(original, encoding="utf-8")


def test_an_agency_gets_its_own_figures_from_the_api(province: tuple[Province, InProcess]) -> None:
    made, _ = province
    node = NodeProcess(made.home.path).start()
    try:
        with client_for(made.home, node, "edu") as client:
            assert client.login("edu", "demo-edu").status == 200
            answer = client.request(
                "GET", "/api/v1/x/reports/summary?from=1405/08/01&to=2026-11-21"
            )
            assert answer.status == 200, answer.body
            body = answer.json()
            wrong = client.request(
                "GET", "/api/v1/x/reports/summary?from=1405/08/01&to=1405/02/31x"
            )
    finally:
        node.stop()
    edu = BY_AGENCY["edu"]
    assert (body["agency"], body["from"], body["to_jalali"]) == ("edu", "2026-10-23", "1405/08/30")
    assert body["figures"] == {
        "sent": 2,
        "received": 3,
        "delivered": 3,
        "delivery_median_s": edu.delivery.median,
        "delivery_p90_s": edu.delivery.p90,
        "read": 3,
        "reading_median_s": 3 * H,
        "reading_p90_s": 10 * H,
        "replies_due": 1,
        "answered_on_time": 0,
        "answered_late": 1,
        "overdue": 0,
        "sheets_saved": 36.0,
        "courier_trips_saved": 4.0,
        "courier_hours_saved": 2.0,
    }
    assert body["assumptions"]["minutes_per_trip"] == 30.0
    assert wrong.status == 400
    assert wrong.error_code == "invalid_field"
    assert wrong.json()["error"]["field"] == "to"
