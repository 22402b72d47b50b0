"""Running the letter policy hooks: refusals as the plugin words them, fail-closed."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING

from govnode.domain.address import Address, InvalidAddress
from govnode.domain.letters import MAX_RECIPIENTS, Recipient, Submission
from govnode.domain.plugins import Draft
from govnode.hooks.errors import LetterRefused
from govnode.hooks.manager import Plugins

if TYPE_CHECKING:
    from govnode.hooks.api import NodeApi


class PolicyUnavailable(Exception):
    """A policy hook failed (raised something other than `LetterRefused`)."""

    def __init__(self, plugin: str) -> None:
        super().__init__(f"the letter policy of plugin {plugin} could not be checked")
        self.plugin = plugin


async def letter_policy(
    api: NodeApi, plugins: Plugins, draft: Draft, submission: Submission
) -> Submission:
    """Ask each plugin in turn; the first refusal ends it. Returns the submission
    with the cc copies the plugins asked for."""
    copies: list[str] = []
    for name in plugins.implementers("govnode_letter_policy"):
        try:
            outcome = plugins.call_one("govnode_letter_policy", name, api=api, letter=draft)
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except LetterRefused:
            raise
        except Exception as exc:
            api.log(name).failure("letter policy of plugin {plugin} failed", plugin=name)
            api.count_error(name, "govnode_letter_policy")
            raise PolicyUnavailable(name) from exc
        if outcome:
            if not _addresses(outcome):
                api.log(name).error(
                    "letter policy of plugin {plugin} answered {answer!r}, not addresses",
                    plugin=name,
                    answer=outcome,
                )
                api.count_error(name, "govnode_letter_policy")
                raise PolicyUnavailable(name)
            copies.extend(outcome)
    if not copies:
        return submission
    return _with_copies(submission, copies, local_node=api.node_id)


def _addresses(outcome: object) -> bool:
    """Whether a policy's answer is what it may answer: a list (or tuple) of strings."""
    return (
        isinstance(outcome, Sequence)
        and not isinstance(outcome, str | bytes)
        and all(isinstance(address, str) for address in outcome)
    )


def _with_copies(submission: Submission, copies: list[str], *, local_node: str) -> Submission:
    named = {r.address for r in submission.recipients}
    listed_cc = len([r for r in submission.recipients if r.kind == "cc"])
    added: list[Recipient] = []
    for text in copies:
        try:
            address = Address.parse(text, local_node=local_node)
        except InvalidAddress as exc:
            raise LetterRefused(
                "unknown_recipient", f"a policy added {text!r}: {exc}", status=422, field="cc"
            ) from None
        if address in named:
            continue
        named.add(address)
        added.append(Recipient(address, "cc", f"cc[{listed_cc + len(added)}]"))
    if listed_cc + len(added) > MAX_RECIPIENTS:
        raise LetterRefused(
            "invalid_field", f"cc takes at most {MAX_RECIPIENTS} addresses", status=400, field="cc"
        )
    return dataclasses.replace(submission, recipients=submission.recipients + tuple(added))
