"""Every hook of govnode: when it runs, what it may return, what its failure does.

A plugin implements any of these with `@govnode.hooks.hookimpl` and the same
name; it may leave out arguments it does not need. `docs/plugins.md`
describes each with an example, and a test keeps that guide and this module
in step. Hooks marked *awaitable* may return a coroutine (an `async def`
implementation); the node awaits it.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING

from govnode.domain.plugins import Draft, LetterEvent, Route, StatusReport
from govnode.hooks.markers import hookspec
from govnode.hooks.settings import PluginSettings

if TYPE_CHECKING:
    from govnode.domain.plugins import DirectoryEntry
    from govnode.hooks.api import NodeApi


@hookspec
def govnode_configure(settings: PluginSettings) -> None:
    """Read and check the plugin's own `[plugins.<name>]` section.

    Called once per plugin, with its own section only (empty when absent),
    whenever the node starts and before every `govnode` command that loads
    plugins. Keep what you read on the plugin object.
    Failure: raise `settings.error(key, message)`; it stops start-up (or the
    command) with the file and key named. Keys the plugin did not read are
    refused as misspelled.
    """


@hookspec
def govnode_startup(api: NodeApi) -> Awaitable[None] | None:
    """The node is starting: open what the plugin needs, schedule its work
    (`api.every`). Awaitable. Runs in every process of the node; `api.primary`
    says whether this is the one that does the node's periodic upkeep.
    The node reports itself ready only once every plugin's start-up is done,
    but its listeners open meanwhile: a request that comes early may reach
    the plugin's routes, policy and directory hooks before this has finished.
    Failure: any exception stops start-up, with the plugin named.
    """


@hookspec
def govnode_shutdown(api: NodeApi) -> Awaitable[None] | None:
    """The node is stopping. Awaitable. Its listeners are closing when this is
    called (requests under way may still be answered); the database is still
    open. Also called when start-up failed, for every plugin.
    Failure: logged and counted; the node stops anyway.
    """


@hookspec
def govnode_api_routes(api: NodeApi) -> Sequence[Route] | None:
    """Extra agency API routes, served under `/api/v1/x/<plugin>/`.

    Called once at start-up. Each route's handler runs only for an
    authenticated caller (the same certificate and token checks as every
    endpoint) and gets a `PluginRequest`. Answers are JSON unless the handler
    returns a `Reply` with a content type. Raise `Refused` for an error
    answer; any other exception answers 500 `internal` (the client sees no
    traceback) and is logged and counted.
    Failure (of this hook): stops start-up.
    """


@hookspec
def govnode_cli_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `govnode` subcommands: `commands.add_parser(...)`.

    Set `run` with `parser.set_defaults(run=fn)`, where `fn(api, args)`
    returns an exit code or an awaitable of one; it runs with a `NodeApi` of
    the node's home (database and directory, no listeners). Raise
    `govnode.hooks.CommandError` for a message and exit code 1 or 2.
    Failure (of this hook): the command line cannot be built; `govnode` stops.
    """


@hookspec
def govnode_agency_enrollment(api: NodeApi, agency: DirectoryEntry) -> Awaitable[None] | None:
    """An agency is about to be enrolled (issued its client certificate), by
    `govnode agency enroll` or by a plugin through `api.enroll`. Awaitable.

    Raise `EnrollmentRefused(reason)` to refuse; the operator sees the reason
    and nothing is issued. Failure: fail-closed; any other exception refuses
    the enrollment too, naming the plugin.
    """


@hookspec
def govnode_letter_policy(api: NodeApi, letter: Draft) -> Awaitable[Sequence[str] | None] | None:
    """A letter is about to be registered (submitted through the API, or sent by
    a plugin). Awaitable. Runs after the letter's fields are checked and
    before the letter is stored (its attachments' files are written already;
    files no letter holds are removed later by the node's purge).

    Raise `LetterRefused(code, message, status=403, field=None)` to refuse:
    the client gets exactly that error and no letter is stored (no number is
    taken, no mailbox shows it). Return addresses to add as cc (a parent
    agency's copy, say): they are checked like any recipient. Return None to
    say nothing.
    Failure: fail-closed; any other exception refuses the letter with 503
    `unavailable` (try again later) and is logged and counted.
    """


@hookspec(firstresult=True)
def govnode_route(api: NodeApi, destination: str) -> str | None:
    """The next hop for letters to node `destination`, overriding the configured
    routes: a configured peer's id, or None to leave it to the configuration.

    The first plugin to answer wins (firstresult). Called for every letter
    sent elsewhere and every status notice: answer from memory, without I/O.
    An answer that is not a configured peer is ignored with a log line.
    Failure: logged and counted; the configured routes answer.
    """


@hookspec
def govnode_directory_entry(api: NodeApi, agency: DirectoryEntry) -> Mapping[str, object] | None:
    """Extra facts about a directory entry, shown to API clients under
    `"x": {"<plugin>": {...}}` of `GET /api/v1/directory` and
    `GET /api/v1/directory/{code}`. Return JSON values, or None.
    Called per entry answered: answer from memory, without I/O.
    Failure: logged and counted; the entry is answered without that plugin's part.
    """


@hookspec
def govnode_letter_event(api: NodeApi, event: LetterEvent) -> Awaitable[None] | None:
    """A step of a letter has been committed: registered (at its origin),
    relayed, delivered, read, answered, failed or expired. Awaitable.

    Runs in the node's primary process, in the order of the events, shortly
    after the commit (within about a second), at least once: after a crash
    the last events may come again (`event.id` tells them apart).
    Failure: logged and counted; the letter goes on untouched and the next
    events are still handed on.
    """


@hookspec
def govnode_status(api: NodeApi) -> Awaitable[StatusReport | None] | None:
    """The plugin's part of `govnode status`, the operator's dashboard: a few
    lines and their facts as JSON, or None for nothing to show. Awaitable.
    Called by the command (not the daemon) at each refresh, with the database
    open; keep it to a few queries.
    Failure: the dashboard shows that the plugin failed, and the rest.
    """
