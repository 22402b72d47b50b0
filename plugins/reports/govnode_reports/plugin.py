"""The reports plugin's hooks: its settings, its commands, and one API route.

`govnode reports ...` (cli.py) is for the operator; `GET
/api/v1/x/reports/summary?from=DAY&to=DAY` gives an agency its own figures.
The figures themselves are computed in figures.py, away from any I/O.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from govnode.hooks import (
    NodeApi,
    PluginRequest,
    PluginSettings,
    Refused,
    Route,
    hookimpl,
    rfc3339,
)
from govnode_reports import cli, figures, text
from govnode_reports.figures import Assumptions, PeriodError
from govnode_reports.gather import gather
from govnode_reports.settings import read_assumptions

NAME = "reports"


class ReportsPlugin:
    """One instance (`plugin`) is what the entry point names; it keeps the assumptions."""

    def __init__(self) -> None:
        self.assumptions = Assumptions()

    @hookimpl
    def govnode_configure(self, settings: PluginSettings) -> None:
        """`[plugins.reports]`: the paper assumptions (settings.py), every key optional."""
        self.assumptions = read_assumptions(settings)

    @hookimpl
    def govnode_cli_commands(self, commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        cli.add_commands(commands, lambda: self.assumptions)

    @hookimpl
    def govnode_api_routes(self, api: NodeApi) -> Sequence[Route]:
        async def summary(request: PluginRequest) -> dict[str, Any]:
            return await self.agency_summary(api, request)

        return [Route("GET", "summary", summary)]

    async def agency_summary(self, api: NodeApi, request: PluginRequest) -> dict[str, Any]:
        """The caller's own figures for `from`..`to` (both required, Jalali or Gregorian)."""
        bounds = {}
        for bound in ("from", "to"):
            value = request.arg(bound)
            if not value:
                raise Refused(
                    400,
                    "invalid_field",
                    f"{bound} is required: a day such as 1405/01/01",
                    field=bound,
                )
            bounds[bound] = value
        try:
            period = figures.period_of(bounds["from"], bounds["to"])
        except PeriodError as exc:
            raise Refused(
                400, "invalid_field", f"{exc.bound}: {exc.message}", field=exc.bound
            ) from None
        code = request.caller.agency
        material = await gather(api, period, self.assumptions, agency=code)
        report = await api.in_thread(
            figures.summarize,
            material.letters,
            material.agencies,
            period,
            self.assumptions,
            as_of=material.as_of,
            agency=code,
            attachments=material.attachments,
        )
        if not report.rows:  # only when the directory lost the caller since it logged in
            raise Refused(404, "not_found", f"{code} is not in the directory of {api.node_id}")
        row = report.rows[0]
        return {
            "agency": code,
            "from": period.first.isoformat(),
            "to": period.last.isoformat(),
            "from_jalali": text.jalali_of(period.first),
            "to_jalali": text.jalali_of(period.last),
            "as_of": rfc3339(material.as_of),
            "figures": text.figures_json(row.figures),
            "assumptions": asdict(self.assumptions),
        }


plugin = ReportsPlugin()
