"""The service life cycle: order, out-of-order calls, failure unwinding, the budget."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapster.plugin import PluginKind
from tapster.service import (
    Application,
    MultiService,
    Service,
    ServiceError,
    ServiceMaker,
    ServiceStartError,
    remaining_budget,
    shutdown,
)
from tapster.usage import Options


class Recorder(Service):
    """Appends what happens to it to a shared journal."""

    def __init__(self, name: str, journal: list[str], fail: str = "") -> None:
        super().__init__()
        self.name = name
        self.journal = journal
        self.fail = fail

    def privileged_start(self) -> None:
        self.journal.append(f"bind {self.name}")
        if self.fail == "bind":
            raise OSError(f"cannot bind {self.name}")

    def release_privileged(self) -> None:
        self.journal.append(f"unbind {self.name}")

    async def start(self) -> None:
        await super().start()
        await asyncio.sleep(0)
        if self.fail == "start":
            raise RuntimeError("boom")
        self.journal.append(f"start {self.name}")

    async def stop(self) -> None:
        await asyncio.sleep(0)
        self.journal.append(f"stop {self.name}")
        await super().stop()


def tree(journal: list[str], *names: str, fail: dict[str, str] | None = None) -> MultiService:
    root = MultiService()
    for name in names:
        Recorder(name, journal, (fail or {}).get(name, "")).set_parent(root)
    return root


def test_children_start_in_order_and_stop_in_reverse(run_async: Any) -> None:
    journal: list[str] = []
    root = tree(journal, "a", "b", "c")
    root.privileged_start()
    run_async(root.start())
    assert root.running and all(child.running for child in root)
    run_async(root.stop())
    assert journal == [
        "bind a", "bind b", "bind c",
        "start a", "start b", "start c",
        "stop c", "stop b", "stop a",
    ]  # fmt: skip
    assert not root.running and not any(child.running for child in root)


def test_out_of_order_calls_are_defined(run_async: Any) -> None:
    journal: list[str] = []
    service = Recorder("x", journal)
    run_async(service.stop())  # stop before start: nothing
    assert journal == []
    run_async(service.start())  # start without privileged_start binds first
    run_async(service.start())  # start twice: nothing more
    service.privileged_start()  # bind while running: nothing
    assert journal == ["bind x", "start x"]
    run_async(service.stop())
    run_async(service.stop())  # stop twice: nothing more
    assert journal == ["bind x", "start x", "stop x"]
    run_async(service.start())  # a stopped service starts again
    run_async(service.stop())
    assert journal[3:] == ["bind x", "start x", "stop x"]


def test_stop_after_bind_only_releases(run_async: Any) -> None:
    journal: list[str] = []
    service = Recorder("x", journal)
    service.privileged_start()
    service.privileged_start()
    run_async(service.stop())
    assert journal == ["bind x", "unbind x"]
    assert not service.running


def test_concurrent_stop_waits_for_start(run_async: Any) -> None:
    journal: list[str] = []

    class Slow(Recorder):
        async def start(self) -> None:
            await asyncio.sleep(0.05)
            await super().start()

    service = Slow("s", journal)

    async def both() -> None:
        starting = asyncio.ensure_future(service.start())
        await asyncio.sleep(0.01)
        await service.stop()
        await starting

    run_async(both())
    assert journal == ["bind s", "start s", "stop s"]
    assert not service.running


def test_failing_child_unwinds_in_reverse_and_is_named(run_async: Any) -> None:
    journal: list[str] = []
    root = tree(journal, "a", "b", "c", "d", fail={"c": "start"})
    root.privileged_start()
    with pytest.raises(ServiceStartError, match=r"service 'c' failed to start: boom") as info:
        run_async(root.start())
    assert info.value.service_name == "c"
    assert journal == [
        "bind a", "bind b", "bind c", "bind d",
        "start a", "start b",
        "unbind c",  # the failed child gives back its own binding
        "stop b", "stop a",
        "unbind d",  # bound, never started
    ]  # fmt: skip
    assert not root.running and not any(child.running for child in root)


def test_failing_bind_releases_the_bound_ones(run_async: Any) -> None:
    journal: list[str] = []
    root = tree(journal, "a", "b", "c", fail={"b": "bind"})
    with pytest.raises(ServiceStartError, match=r"'b' failed to start: cannot bind b"):
        root.privileged_start()
    assert journal == ["bind a", "bind b", "unbind a"]
    # Nothing is left bound: a later start binds everything again.
    root.get_service_named("b").fail = ""  # type: ignore[attr-defined]
    run_async(root.start())
    run_async(root.stop())
    assert journal[3:6] == ["bind a", "bind b", "bind c"]


def test_nested_failure_names_the_path(run_async: Any) -> None:
    journal: list[str] = []
    app = Application("app")
    web = tree(journal, "http", "https", fail={"https": "start"})
    web.name = "web"
    web.set_parent(app)
    with pytest.raises(ServiceStartError, match=r"service 'web/https' failed to start: boom"):
        run_async(app.start())


def test_names_are_unique_and_parents_exclusive() -> None:
    journal: list[str] = []
    root = tree(journal, "a")
    with pytest.raises(ServiceError, match="already has a service named 'a'"):
        Recorder("a", journal).set_parent(root)
    other = MultiService()
    with pytest.raises(ServiceError, match="already belongs"):
        root.get_service_named("a").set_parent(other)
    with pytest.raises(KeyError):
        root.get_service_named("missing")
    with pytest.raises(ServiceError, match="cannot contain itself"):
        root.add_service(root)
    child = root.get_service_named("a")
    child.disown_parent()
    assert child.parent is None and len(root) == 0
    child.set_parent(other)
    assert other.get_service_named("a") is child
    anonymous = [Service(), Service()]
    for service in anonymous:
        service.set_parent(root)  # several unnamed children are fine
    assert anonymous[1].label == "#2 (Service)"


def test_add_and_remove_on_a_running_collection(run_async: Any) -> None:
    journal: list[str] = []
    root = tree(journal, "a")

    async def scenario() -> None:
        await root.start()
        late = Recorder("late", journal)
        task = root.add_service(late)
        assert task is not None
        await task
        assert late.running
        removed = root.remove_service(late)
        assert removed is not None
        await removed
        assert not late.running and late.parent is None
        broken = Recorder("broken", journal, fail="start")
        task = root.add_service(broken)
        assert task is not None
        with pytest.raises(ServiceStartError, match="'broken' failed"):
            await task
        assert broken.parent is None  # a child that cannot start is removed again
        await root.stop()

    run_async(scenario())
    assert journal == [
        "bind a", "start a", "bind late", "start late", "stop late",
        "bind broken", "unbind broken", "stop a",
    ]  # fmt: skip


def test_subclass_without_super_init_still_works(run_async: Any) -> None:
    class Bare(Service):
        def __init__(self) -> None:
            self.calls = 0

        async def start(self) -> None:
            self.calls += 1

    bare = Bare()
    run_async(bare.start())
    run_async(bare.start())
    assert bare.running and bare.calls == 1


class Hang(Service):
    def __init__(self, name: str, journal: list[str]) -> None:
        super().__init__()
        self.name = name
        self.journal = journal

    async def stop(self) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.journal.append(f"cancelled {self.name}")
            raise


def test_shutdown_budget_cancels_and_names_the_overrun(
    run_async: Any, caplog: pytest.LogCaptureFixture
) -> None:
    journal: list[str] = []
    app = Application("app")
    Recorder("first", journal).set_parent(app)
    Hang("stuck", journal).set_parent(app)
    Recorder("last", journal).set_parent(app)
    run_async(app.start())
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="tapster.service"):
        run_async(shutdown(app, 0.3))
    elapsed = time.monotonic() - started
    assert 0.2 < elapsed < 2.0
    # Reverse order; the stuck one is cancelled; the one after it still stops.
    assert journal[-3:] == ["stop last", "cancelled stuck", "stop first"]
    assert "service 'stuck' did not stop within the shutdown budget" in caplog.text
    assert not app.running


def test_each_stop_gets_the_remaining_budget(run_async: Any) -> None:
    seen: list[float | None] = []

    class Measure(Service):
        async def stop(self) -> None:
            seen.append(remaining_budget())
            await asyncio.sleep(0.2)

    root = MultiService()
    Measure().set_parent(root)
    Measure().set_parent(root)
    run_async(root.start())
    run_async(shutdown(root, 1.0))
    assert seen[0] is not None and seen[1] is not None
    assert 0.8 < seen[0] <= 1.0
    assert 0.6 < seen[1] < seen[0] - 0.15
    run_async(root.start())
    run_async(root.stop())  # outside shutdown there is no budget
    assert seen[2:] == [None, None]


def test_shutdown_logs_a_failing_stop_and_goes_on(
    run_async: Any, caplog: pytest.LogCaptureFixture
) -> None:
    journal: list[str] = []

    class Broken(Service):
        name = "broken"

        async def stop(self) -> None:
            raise RuntimeError("disk on fire")

    root = MultiService()
    Recorder("a", journal).set_parent(root)
    Broken().set_parent(root)
    run_async(root.start())
    with caplog.at_level(logging.ERROR, logger="tapster.service"):
        run_async(shutdown(root, 1.0))
    assert "service 'broken' failed while stopping: disk on fire" in caplog.text
    assert journal[-1] == "stop a"


def test_application_carries_process_identity() -> None:
    app = Application("mydaemon", uid=65534, gid=65534)
    assert (app.name, app.uid, app.gid) == ("mydaemon", 65534, 65534)
    assert Application("x").uid is None
    with pytest.raises(ValueError):
        Application("")


def test_service_maker_is_a_plugin_kind() -> None:
    assert ServiceMaker.plugin_kind == "tapster.service.ServiceMaker"
    assert ServiceMaker.plugin_name_field == "tapname"
    assert ServiceMaker.plugin_fields == ("tapname", "description")

    class DemoOptions(Options):
        parameters = [("port", "p", 1235, "The port number to listen on.", int)]

    class Maker(ServiceMaker):
        tapname = "demo"
        description = "A demo."
        options = DemoOptions

        def make_service(self, options: Any) -> Service:
            service = Service()
            service.name = f"port {options['port']}"
            return service

    maker = Maker()
    assert isinstance(maker, PluginKind)
    options = maker.options()
    options.parse_options(["--port", "8080"])
    assert maker.make_service(options).name == "port 8080"
    with pytest.raises(TypeError):
        ServiceMaker()  # type: ignore[abstract]


def test_a_child_added_while_the_collection_starts_is_started(run_async: Any) -> None:
    journal: list[str] = []
    root = MultiService()
    late = Recorder("late", journal)

    class AddsASibling(Recorder):
        async def start(self) -> None:
            await super().start()
            root.add_service(late)  # the collection is starting, not yet running

    AddsASibling("first", journal).set_parent(root)
    run_async(root.start())
    assert late.running
    assert journal[-2:] == ["bind late", "start late"]
    run_async(root.stop())
    assert journal[-2:] == ["stop late", "stop first"]


def test_a_failing_stop_outside_shutdown_does_not_keep_others_running(
    run_async: Any, caplog: pytest.LogCaptureFixture
) -> None:
    journal: list[str] = []

    class Broken(Service):
        name = "broken"

        async def stop(self) -> None:
            raise RuntimeError("stuck valve")

    root = MultiService()
    Recorder("a", journal).set_parent(root)
    Broken().set_parent(root)
    run_async(root.start())
    with caplog.at_level(logging.ERROR, logger="tapster.service"):
        run_async(root.stop())
    assert journal[-1] == "stop a"
    assert not root.running
    assert "service 'broken' failed while stopping: stuck valve" in caplog.text


def test_an_empty_collection_is_still_true() -> None:
    assert MultiService()
    assert Application("x")


def test_stop_from_within_start_cleans_up_without_deadlock(run_async: Any) -> None:
    journal: list[str] = []

    class HalfStarts(Recorder):
        async def start(self) -> None:
            await super().start()
            journal.append("half")
            await self.stop()  # give up and clean up what was done so far

    service = HalfStarts("h", journal)
    run_async(asyncio.wait_for(service.start(), 5))
    assert not service.running
    assert journal == ["bind h", "start h", "half", "stop h", "unbind h"]
    run_async(service.stop())  # nothing more to do
    assert journal[-1] == "unbind h"


def test_start_from_within_stop_does_nothing(run_async: Any) -> None:
    journal: list[str] = []

    class Restless(Recorder):
        async def stop(self) -> None:
            await self.start()
            await super().stop()

    service = Restless("r", journal)
    run_async(service.start())
    run_async(asyncio.wait_for(service.stop(), 5))
    assert not service.running
    assert journal == ["bind r", "start r", "stop r"]


def test_labels_name_the_path() -> None:
    app = Application("app")
    only = Service()
    only.set_parent(app)
    assert only.label == "Service"
    second = Service()
    second.set_parent(app)
    assert (only.label, second.label) == ("#1 (Service)", "#2 (Service)")
    web = MultiService()
    web.name = "web"
    web.set_parent(app)
    http = Service()
    http.name = "http"
    http.set_parent(web)
    assert http.label == "web/http"
    assert app.label == "app"


class Stubborn(Service):
    """A stop that swallows cancellation (a bug we must survive)."""

    async def stop(self) -> None:
        deadline = time.monotonic() + 1.6  # beyond the budget and the grace
        while time.monotonic() < deadline:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue


def test_services_that_ignore_cancellation_share_one_grace(
    run_async: Any, caplog: pytest.LogCaptureFixture
) -> None:
    root = MultiService()
    for _ in range(3):
        Stubborn().set_parent(root)
    run_async(root.start())
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="tapster.service"):
        run_async(shutdown(root, 0.3))
    assert time.monotonic() - started < 2.5  # not 3 x (budget + grace)
    assert caplog.text.count("ignored cancellation") >= 1


def test_wrong_kind_of_method_is_caught_when_the_class_is_made() -> None:
    with pytest.raises(TypeError, match=r"Sync\.start must be an 'async def' method"):

        class Sync(Service):
            def start(self) -> None:  # type: ignore[override]
                pass

    with pytest.raises(TypeError, match=r"Async\.privileged_start must be a plain 'def'"):

        class Async(Service):
            async def privileged_start(self) -> None:  # type: ignore[override]
                pass


OPERATIONS = ("privileged_start", "release_privileged", "start", "stop")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(OPERATIONS), max_size=12))
def test_any_order_of_calls_keeps_the_state_consistent(operations: list[str]) -> None:
    """Any sequence of life-cycle calls: state and side effects follow one simple model."""
    journal: list[str] = []
    service = Recorder("s", journal)
    running = bound = False
    expected: list[str] = []

    async def scenario() -> None:
        nonlocal running, bound
        for operation in operations:
            if operation == "privileged_start":
                service.privileged_start()
                if not running and not bound:
                    expected.append("bind s")
                    bound = True
            elif operation == "release_privileged":
                service.release_privileged()
                if not running and bound:
                    expected.append("unbind s")
                    bound = False
            elif operation == "start":
                await service.start()
                if not running:
                    if not bound:
                        expected.append("bind s")
                    expected.append("start s")
                    running = bound = True
            else:
                await service.stop()
                if running:
                    expected.append("stop s")
                elif bound:
                    expected.append("unbind s")
                running = bound = False
            assert service.running == running
            assert journal == expected

    asyncio.run(scenario())
