"""Plugins on the command line: `govnode plugins list`, plugins' own commands, and
running their async work (enrollment hooks, commands) on a reactor of its own."""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from govnode.cli.errors import EXIT_PROBLEM, CliError
from govnode.cli.output import aligned, print_json
from govnode.config import CONFIG_NAME, Config, ConfigError, load_config
from govnode.hooks.api import NodeApi, entry_of
from govnode.hooks.errors import CommandError, EnrollmentRefused, PluginError
from govnode.hooks.manager import Plugins, load_plugins
from govnode.store.database import Database
from govnode.store.records import AgencyRecord

T = TypeVar("T")


def load_for_cli(home: Path, *, strict: bool = False) -> tuple[Config, Plugins] | None:
    """The home's config and plugins, or None when the home has no config yet
    (`govnode init`, `--help` on a fresh machine): no plugin commands then.
    A config that does not load is None too, unless `strict`: the node's own
    commands report it as they always have."""
    path = home / CONFIG_NAME
    if not path.exists():
        return None
    try:
        config = load_config(path, read_secrets=False)
    except ConfigError as exc:
        if strict:
            raise CliError(str(exc), EXIT_PROBLEM) from None
        return None
    try:
        return config, load_plugins(config)
    except (ConfigError, PluginError) as exc:
        raise CliError(str(exc), EXIT_PROBLEM) from None


def add_commands(sub: argparse._SubParsersAction, plugins: Plugins | None) -> None:  # type: ignore[type-arg]
    listing = sub.add_parser("plugins", help="the installed and enabled plugins")
    plugin_sub = listing.add_subparsers(dest="plugins_command", required=True, metavar="ACTION")
    show = plugin_sub.add_parser("list", help="each enabled plugin: version, hooks")
    show.add_argument("--json", action="store_true", help="JSON instead of a table")
    show.set_defaults(run=list_plugins)
    if plugins is None:
        return
    for name in plugins.implementers("govnode_cli_commands"):
        before = set(sub.choices)
        try:
            plugins.call_one("govnode_cli_commands", name, commands=sub)
        except Exception as exc:  # noqa: BLE001 - named, and the command line stops
            raise CliError(
                f"plugin {name!r} failed to add its commands: {type(exc).__name__}: {exc}",
                EXIT_PROBLEM,
            ) from None
        for added in set(sub.choices) - before:
            _wrap_runs(sub.choices[added])


def _wrap_runs(parser: argparse.ArgumentParser) -> None:
    """Make each `run(api, args)` a plugin's parsers set into what `main` calls."""
    run = parser.get_default("run")
    if run is not None:
        parser.set_defaults(run=plugin_command(run))
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _wrap_runs(child)


def check_enrollment(home: Path, record: AgencyRecord) -> None:
    """Ask the enrollment hooks of the home's plugins (CliError when refused)."""
    loaded = load_for_cli(home)
    if loaded is None:
        return
    config, plugins = loaded
    if not plugins.implementers("govnode_agency_enrollment"):
        return
    entry = entry_of(record, config.node.id)
    try:
        run_async(config, plugins, lambda api: api.check_enrollment(entry))
    except EnrollmentRefused as exc:
        raise CliError(
            f"enrollment of {record.agency.code} refused: {exc.reason}", EXIT_PROBLEM
        ) from None


def list_plugins(args: argparse.Namespace) -> int:
    loaded = load_for_cli(args.home, strict=True)
    if loaded is None:
        raise CliError(f"{args.home / CONFIG_NAME} does not exist (govnode init makes it)")
    config, plugins = loaded
    infos = plugins.info()
    if args.json:
        print_json(
            [
                {
                    "name": i.name,
                    "version": i.version,
                    "distribution": i.distribution,
                    "hooks": list(i.hooks),
                }
                for i in infos
            ]
        )
        return 0
    if not infos:
        print(f"no plugins enabled (plugins.enabled in {config.path})")
        return 0
    rows = [(i.name, i.version, i.distribution, ", ".join(i.hooks)) for i in infos]
    print(aligned([("PLUGIN", "VERSION", "DISTRIBUTION", "HOOKS"), *rows]))
    return 0


def run_async(
    config: Config, plugins: Plugins, work: Callable[[NodeApi], Coroutine[Any, Any, T]]
) -> T:
    """Run `work(api)` on a reactor with the home's database (the CLI has none otherwise).

    One use per process: a reactor does not start twice.
    """
    from twisted.internet import defer
    from twisted.internet import reactor as default_reactor

    reactor: Any = default_reactor
    db = Database(config.database.url, reactor=reactor, pool_size=2)
    api = NodeApi(config=config, db=db, plugins=plugins, reactor=reactor, primary=False)
    outcome: dict[str, Any] = {}

    async def main() -> None:
        try:
            outcome["value"] = await work(api)
        except BaseException as exc:  # noqa: BLE001 - raised again once the reactor stopped
            outcome["error"] = exc

    def start() -> None:
        db.start()
        defer.Deferred.fromCoroutine(main()).addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    _log_warnings_to_stderr()
    try:
        reactor.run()
    finally:
        db.stop()
    if "error" in outcome:
        raise outcome["error"]
    if "value" not in outcome:  # the reactor stopped first: Ctrl-C (SIGINT)
        raise KeyboardInterrupt
    result: T = outcome["value"]
    return result


def _log_warnings_to_stderr() -> None:
    """The node's and plugins' warnings and errors, one line each on stderr.

    Without an observer Twisted prints logged failures with their traceback;
    the command line shows the operator messages instead (the traceback with
    GOVNODE_DEBUG=1), and leaves out the info lines the daemon would log.
    """
    from twisted.logger import (
        FilteringLogObserver,
        ILogObserver,
        LogEvent,
        LogLevel,
        LogLevelFilterPredicate,
        formatEvent,
        globalLogBeginner,
    )
    from zope.interface import provider

    debug = bool(os.environ.get("GOVNODE_DEBUG"))

    @provider(ILogObserver)
    def show(event: LogEvent) -> None:
        line = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            line += f" ({failure.type.__name__}: {failure.getErrorMessage()})"
        print(f"govnode: {line}", file=sys.stderr)
        if failure is not None and debug:
            print(failure.getTraceback(), file=sys.stderr)

    warnings = FilteringLogObserver(show, [LogLevelFilterPredicate(LogLevel.warn)])
    globalLogBeginner.beginLoggingTo([warnings], redirectStandardIO=False)


def plugin_command(run: Callable[[NodeApi, argparse.Namespace], Any]) -> Callable[..., int]:
    """What `main` calls for a plugin's command: `run(api, args)` on a reactor."""

    def command(args: argparse.Namespace) -> int:
        loaded = load_for_cli(args.home, strict=True)
        assert loaded is not None  # the command exists only with a config
        config, plugins = loaded

        async def work(api: NodeApi) -> int:
            outcome = run(api, args)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            return 0 if outcome is None else int(outcome)

        try:
            return run_async(config, plugins, work)
        except CommandError as exc:
            raise CliError(str(exc), exc.exit_code) from None
        except EnrollmentRefused as exc:
            raise CliError(f"enrollment refused: {exc.reason}", EXIT_PROBLEM) from None
        except CliError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's bug: say so, in one line
            if os.environ.get("GOVNODE_DEBUG"):
                traceback.print_exc(file=sys.stderr)
            raise CliError(
                f"the plugin command failed: {type(exc).__name__}: {exc} "
                "(GOVNODE_DEBUG=1 shows the traceback)",
                EXIT_PROBLEM,
            ) from None

    return command
