"""Login attempts for one username run one after another, and leave nothing behind."""

from __future__ import annotations

from collections.abc import Callable, Coroutine

from twisted.internet.defer import Deferred, ensureDeferred

from govnode.api.auth import OneAtATime


def test_calls_for_one_key_wait_for_each_other_and_others_do_not() -> None:
    serial = OneAtATime()
    gates = {name: Deferred[None]() for name in ("a1", "a2", "b1")}
    started: list[str] = []

    def call(name: str) -> Callable[[], Coroutine[object, object, str]]:
        async def body() -> str:
            started.append(name)
            await gates[name]
            return name

        return body

    results = [
        ensureDeferred(serial.run("a", call("a1"))),
        ensureDeferred(serial.run("a", call("a2"))),
        ensureDeferred(serial.run("b", call("b1"))),
    ]
    assert started == ["a1", "b1"]  # a2 waits for a1; b is another key
    gates["a1"].callback(None)
    assert started == ["a1", "b1", "a2"]
    gates["b1"].callback(None)
    gates["a2"].callback(None)
    assert [r.result for r in results] == ["a1", "a2", "b1"]
    assert len(serial) == 0  # idle keys are forgotten: no growth per username tried


def test_a_failing_call_releases_its_key() -> None:
    serial = OneAtATime()

    async def fails() -> None:
        raise ValueError("wrong password")

    async def succeeds() -> str:
        return "ok"

    failed = ensureDeferred(serial.run("a", fails))
    failed.addErrback(lambda failure: failure.trap(ValueError))
    assert ensureDeferred(serial.run("a", succeeds)).result == "ok"
    assert len(serial) == 0
