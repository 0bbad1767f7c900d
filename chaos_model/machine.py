"""The chaos model: a Hypothesis state machine that drives a real stack.

Operations (Telegram deliveries, forged and malformed requests, dashboard reads and feeds)
interleave with faults (pauses, kills, dropped connections, LLM misbehaviour, failpoints). Safety
invariants are checked after every step; at teardown every fault is healed, the system is given
until it quiesces, and liveness invariants are checked. Every step is recorded so that a failing
program can be saved and replayed outside Hypothesis.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis import target as hypothesis_target
from hypothesis.control import currently_in_test_context
from hypothesis.errors import HypothesisException
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from chaos_model._wait import WaitTimeout, wait_until
from chaos_model.adapter import TargetSpec
from chaos_model.config import ALL_FAULT_KINDS, ChaosConfig
from chaos_model.errors import AdapterError, ServiceNotReady
from chaos_model.example import ExampleObserver
from chaos_model.faults import (
    ArmFailpoint,
    Fault,
    KillService,
    LatencyRamp,
    LLMFault,
    NetworkToxic,
    Partition,
    PauseService,
    PointFault,
    RefuseConnections,
    StopService,
    TerminateConnections,
)
from chaos_model.history import History
from chaos_model.invariants import ALL as ALL_INVARIANTS
from chaos_model.invariants import (
    CheckContext,
    ModelState,
    Result,
    Verdict,
    applicable,
)
from chaos_model.observe import PendingSample, Snapshot, pending_depth
from chaos_model.points import ExampleCoverage, FaultedPoint, PointCatalogue
from chaos_model.stack import Stack
from chaos_model.target import Target, driver_class, make_target
from chaos_model.telegram import BotApi, run_chat_id

LLM_MODES = ("rate_limit", "error", "slow", "hang", "malformed")
FEEDS = ("dashboard-a", "dashboard-b")
#: the rules :func:`bind` makes from a target's adapter
TARGET_RULES = (
    "pause",
    "kill",
    "stop",
    "partition",
    "network",
    "latency_ramp",
    "failpoint",
    "point_fault",
    "read_back",
    "open_feed",
    "drop_feed",
)
#: each fault kind once, and kills and LLM failures a second time (a weight of two); failpoints
#: are not drawn here: they are available in every example
SWARM_KINDS = (*ALL_FAULT_KINDS, "kill", "llm")
#: a crash is drawn twice as often as a hang
FAILPOINT_ACTIONS = ("crash", "hang", "crash")
#: how a point fault is drawn: a crash after the call (the gap before the next one) most often
POINT_MODES = (
    ("after", "crash"),
    ("after", "crash"),
    ("before", "crash"),
    ("after", "raise"),
    ("before", "raise"),
    ("after", "hang"),
)


def _toxic(kind: str, stream: str = "downstream", **attributes: float) -> dict[str, Any]:
    return {"type": kind, "stream": stream, "toxicity": 1.0, "attributes": attributes}


#: Network toxics the model draws from: each degrades a link without cutting it for long.
TOXICS: tuple[dict[str, Any], ...] = (
    _toxic("latency", latency=300, jitter=100),
    _toxic("latency", "upstream", latency=1500),
    _toxic("bandwidth", rate=16),
    _toxic("timeout", timeout=0),
    _toxic("reset_peer", timeout=100),
    _toxic("slow_close", delay=500),
    _toxic("slicer", average_size=16, size_variation=8, delay=200),
    _toxic("limit_data", bytes=2048),
)
MALFORMED_KINDS = ("not_json", "not_object", "missing_fields", "wrong_types", "oversized")
FORGED_SECRET = "forged-secret"
FEED_CATCH_UP_SECONDS = 5.0
#: how long the system must look idle before an armed failpoint is given up on
QUIET_CONFIRM_SECONDS = 0.3
LONG_TEXT = "long message " * 300

TEXTS = st.one_of(
    st.just(""),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40),
    st.sampled_from(["привет, мир", "日本語のテキスト", "emoji 🎉 party", LONG_TEXT]),
)

#: the bot whose updates every example sends: ids keep growing across examples, as a bot's do
BOT = BotApi()
#: the private chat the recovery probe writes in, apart from the chats of the program
PROBE_CHAT = 511_000_999


class SafetyViolation(AssertionError):
    """A safety invariant failed after a step: stored data is wrong."""


class LivenessViolation(AssertionError):
    """A liveness invariant failed after heal and quiescence: the system did not get there."""


def _failed(results: list[Result]) -> list[Result]:
    return [result for result in results if result.verdict is Verdict.INVALID]


class ChaosMachine(RuleBasedStateMachine):
    """Drives ``stack`` (bound by :func:`bind`) through operations and faults.

    The rules that depend on the target (which services to pause, kill or stop, which links to
    cut, which failpoints to arm, whether there is a dashboard) are plain methods here;
    :func:`bind` turns them into rules drawing from the target's adapter.
    """

    stack: ClassVar[Stack]
    config: ClassVar[ChaosConfig]
    recorder: ClassVar[ExampleObserver]
    #: the configured fault kinds the stack can perform
    usable_faults: ClassVar[frozenset[str]]
    #: the fault points known to the run (what point faults are drawn from)
    catalogue: ClassVar[PointCatalogue]

    updates = Bundle("updates")

    def __init__(self) -> None:
        super().__init__()
        self.recorder.before_example()
        reset_seconds = self.stack.reset()
        self.history = History()
        self.spec: TargetSpec = self.stack.target
        self.target = make_target(self.stack, self.history)
        self.model = ModelState(max_attempts=self.spec.limits.max_attempts)
        safety, liveness = applicable(self.spec)
        checked = lambda inv: inv.name not in self.config.skip_invariants  # noqa: E731
        self.safety_invariants = tuple(filter(checked, safety))
        self.liveness_invariants = tuple(filter(checked, liveness))
        self._prepare_reference_model()
        self.active: dict[str, Fault] = {}
        self.applied_at: dict[str, float] = {}
        self.steps: list[dict[str, Any]] = []
        self.delivered: list[int] = []
        self.bodies: dict[int, dict[str, Any]] = {}
        self.pending_at_deadline: dict[str, Any] = {}
        #: pending work over time: read with each step's snapshot, and at every look for
        #: quiescence; a sample is kept when the counts change
        self.queue_depth: list[PendingSample] = []
        #: seconds since the example began: teardown's start, and the first quiescence after
        #: the final heal (None while it has not quiesced)
        self.teardown_at: float | None = None
        self.quiescent_at: float | None = None
        self.enabled_faults = self.usable_faults
        self.opened_feeds: set[str] = set()
        self.findings: list[Result] = []
        self.coverage = ExampleCoverage()
        self.recorder.example_started(reset_seconds)

    # ------------------------------------------------------------------ reference model
    def _prepare_reference_model(self) -> None:
        """What the reference model needs from the adapter, and the clocks to read the LLM
        stub's records with."""
        self.model.graph = self.spec.stage_graph
        self.model.oracle = self.spec.oracle
        self.model.webhook_service = self.spec.webhook.service
        self.model.webhook_deadline = (
            self.spec.webhook.deadline or self.target.telegram.config.read_timeout
        )
        self.model.wall_offset = time.time() - (time.monotonic() - self.history.started)
        self._reads_llm_records = any(
            "oracle" in inv.needs for inv in self.safety_invariants + self.liveness_invariants
        )

    def _llm_records(self) -> list[dict[str, Any]] | None:
        """The LLM stub's records of this example, for the oracle; None when unreadable."""
        if not self._reads_llm_records:
            return None
        try:
            return self.target.llm_records()
        except Exception:  # noqa: BLE001 - no records means "unknown" for the oracle
            return None

    # ------------------------------------------------------------------ bookkeeping
    def _record(self, rule_name: str, **args: Any) -> None:
        self.steps.append({"rule": rule_name, "args": args})
        self.recorder.step()

    def _violate(self, invariant: str, detail: str) -> None:
        self._found([Result(invariant, "safety", Verdict.INVALID, detail)])

    def _may_inject(self, kind: str) -> bool:
        return kind in self.enabled_faults and len(self.active) < self.config.max_concurrent_faults

    # ------------------------------------------------------------------ swarm
    @initialize(kinds=st.sets(st.sampled_from(SWARM_KINDS), min_size=1, max_size=3))
    def choose_faults(self, kinds: set[str]) -> None:
        """Swarm testing: each example uses only a few fault kinds, so each kind gets many
        more chances to meet the work it can break than in a uniform mix of all of them.
        Process kills and LLM failures are drawn twice as often as the rest: they open the
        windows where work is lost or repeated."""
        self._record("choose_faults", kinds=sorted(kinds))
        if self.config.swarm:
            # Failpoints stay available in every example: they are cheap until they fire, and
            # each one is a single place in the code, so they need every chance they can get.
            chosen = frozenset(kinds) | {"failpoint", "point"}
            self.enabled_faults = chosen & self.usable_faults or self.usable_faults

    def _apply(self, key: str, fault: Fault) -> None:
        self.recorder.fault_applied(fault.kind)
        op = self.history.invoke("nemesis", "fault", fault.to_json())
        # A stack owned by another process records the fault in its lease before it exists, so
        # the owner's watchdog heals it if this process dies or the fault outlives its bound.
        applied = getattr(self.stack, "fault_applied", None)
        if applied is not None and not fault.instant:
            applied(fault.to_json(), self.config.max_fault_seconds)
        try:
            fault.apply(self.stack)
        except BaseException as error:
            self.history.complete(op, "info", error=repr(error))
            raise
        self.history.complete(op, "ok")
        if not fault.instant:
            self.active[key] = fault
            self.applied_at[key] = time.monotonic()

    def _heal(self, key: str) -> None:
        fault = self.active.pop(key)
        op = self.history.invoke("nemesis", "heal", fault.to_json())
        try:
            fault.heal(self.stack)
        except ServiceNotReady as error:
            self.history.complete(op, "info", error=str(error).splitlines()[0])
            # A restarted process may run straight into a crash failpoint or point fault that
            # is still armed: that is the fault doing its job, and the final heal disarms it and
            # restarts.
            armed = (PointFault, ArmFailpoint)
            still_armed = any(isinstance(f, armed) for f in self.active.values())
            if not still_armed:
                raise
            return
        healed = getattr(self.stack, "fault_healed", None)
        if healed is not None:
            healed(fault.to_json())
        self.history.complete(op, "ok")

    # ------------------------------------------------------------------ operations
    @rule(target=updates, chat=st.integers(min_value=0, max_value=2), text=TEXTS)
    def deliver(self, chat: int, text: str) -> int:
        self._record("deliver", chat=chat, text=text)
        update = BOT.message(run_chat_id(chat % self.config.chats), text)
        update_id: int = update["update_id"]
        self.bodies[update_id] = update
        self.model.sent[update_id] = chat
        self.model.texts[update_id] = text
        self.delivered.append(update_id)
        self.target.deliver(update)
        return update_id

    @rule(update=updates)
    def redeliver(self, update: int) -> None:
        self._record("redeliver", update=self.delivered.index(update))
        self.target.deliver(self.bodies[update])

    @rule(text=TEXTS)
    def forged(self, text: str) -> None:
        self._record("forged", text=text)
        update = BOT.message(run_chat_id(0), text)
        self.model.rejected.add(update["update_id"])
        body = json.dumps(update).encode()
        result = self.target.send_direct(body, FORGED_SECRET, "attacker", "forged")
        if result.status is not None and 200 <= result.status < 300:
            self._violate("forged_update_rejected", f"accepted with HTTP {result.status}")

    @rule(kind=st.sampled_from(MALFORMED_KINDS))
    def malformed(self, kind: str) -> None:
        self._record("malformed", kind=kind)
        if kind == "oversized" and not self.spec.webhook.max_text:
            return  # a text longer than Telegram allows is wrong only if the target says so
        body = self._malformed_body(kind)
        result = self.target.send_direct(body, self.stack.endpoints.webhook_secret, "client", kind)
        if result.status is not None and not 400 <= result.status < 500 and result.status != 503:
            self._violate("malformed_body_rejected", f"{kind} body answered HTTP {result.status}")

    def _malformed_body(self, kind: str) -> bytes:
        valid = BOT.message(run_chat_id(0), "malformed")
        update_id: int = valid["update_id"]
        self.model.rejected.add(update_id)
        if kind == "not_json":
            return b"\xff{update_id: " + str(update_id).encode()
        if kind == "not_object":
            return json.dumps([valid]).encode()
        if kind == "missing_fields":
            del valid["message"]["chat"]
            return json.dumps(valid).encode()
        if kind == "wrong_types":
            valid["message"]["chat"]["id"] = "not a number"
            return json.dumps(valid).encode()
        valid["message"]["text"] = "x" * (self.spec.webhook.max_text + 1)
        return json.dumps(valid).encode()

    def read_back(self) -> None:
        self._record("read_back")
        self.target.read_back()

    def open_feed(self, name: str) -> None:
        self._record("open_feed", name=name)
        self.opened_feeds.add(name)
        self.target.feed_open(name)

    def drop_feed(self, name: str) -> None:
        self._record("drop_feed", name=name)
        self.opened_feeds.discard(name)
        self.target.feed_drop(name)

    # ------------------------------------------------------------------ faults
    def pause(self, service: str) -> None:
        self._record("pause", service=service)
        if service not in self.active:
            self._apply(service, PauseService(service))

    def kill(self, service: str) -> None:
        self._record("kill", service=service)
        if service not in self.active:
            self._apply(service, KillService(service))

    def stop(self, service: str) -> None:
        self._record("stop", service=service)
        if service not in self.active:
            self._apply(service, StopService(service))

    def partition(self, link: str) -> None:
        self._record("partition", link=link)
        if f"link:{link}" not in self.active:
            self._apply(f"link:{link}", Partition(link))

    def network(self, link: str, toxic: dict[str, Any]) -> None:
        self._record("network", link=link, toxic=toxic)
        if f"link:{link}" not in self.active:
            self._apply(f"link:{link}", NetworkToxic(link, toxic))

    @precondition(lambda self: self._may_inject("refuse_connections"))
    @rule()
    def refuse_connections(self) -> None:
        self._record("refuse_connections")
        if "postgres" not in self.active:
            self._apply("postgres", RefuseConnections())

    def latency_ramp(self, link: str, latency_ms: int) -> None:
        self._record("latency_ramp", link=link, latency_ms=latency_ms)
        if f"link:{link}" not in self.active:
            self._apply(f"link:{link}", LatencyRamp(link, latency_ms=latency_ms))

    @precondition(
        lambda self: (
            "terminate_connections" in self.enabled_faults and "postgres" not in self.active
        )
    )
    @rule()
    def terminate_connections(self) -> None:
        self._record("terminate_connections")
        self._apply("terminate_connections", TerminateConnections())

    @precondition(lambda self: self._may_inject("llm"))
    @rule(
        mode=st.sampled_from(LLM_MODES),
        seconds=st.sampled_from([0.5, 1.0, 2.0, 3.0]),
    )
    def llm_fault(self, mode: str, seconds: float) -> None:
        self._record("llm_fault", mode=mode, seconds=seconds)
        if "llm" not in self.active:
            self._apply("llm", LLMFault(mode, seconds=seconds))

    @precondition(lambda self: self._may_inject("llm"))
    @rule(mode=st.sampled_from(("error", "malformed")))
    def break_llm(self, mode: str) -> None:
        """The LLM fails until healed: longer than any retry budget, so messages that need it
        must end dead-lettered (``failed`` with a reason), never retried forever."""
        self._record("break_llm", mode=mode)
        if "llm" not in self.active:
            self._apply("llm", LLMFault(mode, seconds=None))

    def failpoint(self, name: str, action: str) -> None:
        self._record("failpoint", name=name, action=action)
        if "failpoint" not in self.active:
            self._apply("failpoint", ArmFailpoint(name, action))

    def point_fault(self, index: int, mode: tuple[str, str]) -> None:
        """A point fault at one of the points the run knows (drawn by index)."""
        point = self.catalogue.pick(index)
        if point is not None:
            when, action = mode
            self.point(point.service, point.key, when=when, action=action)

    def point(
        self,
        service: str,
        point: str,
        when: str = "after",
        action: str = "crash",
        occurrence: int = 1,
    ) -> None:
        self._record(
            "point", service=service, point=point, when=when, action=action, occurrence=occurrence
        )
        key = f"point:{service}:{point}"
        if key not in self.active:
            self._apply(key, PointFault(service, point, when, action, occurrence))

    @precondition(lambda self: bool(self.active))
    @rule(index=st.integers(min_value=0, max_value=7))
    def heal_one(self, index: int) -> None:
        self._record("heal_one", index=index)
        keys = sorted(self.active)
        self._heal(keys[index % len(keys)])

    @precondition(lambda self: bool(self.active))
    @rule()
    def heal_all(self) -> None:
        self._record("heal_all")
        self._heal_everything()

    def _heal_everything(self) -> None:
        """Heal every fault, then the whole stack; a fault whose own heal failed (a service
        restarted while its database still refused connections) is left to the stack's heal,
        which fails if anything is still not ready."""
        for key in sorted(self.active, key=self._heal_order):
            # a failure is recorded in the history by _heal; the stack's heal below decides
            with contextlib.suppress(ServiceNotReady):
                self._heal(key)
        op = self.history.invoke("nemesis", "heal-all")
        healed = self.stack.heal()
        self.history.complete(op, "ok", value=healed)

    def _heal_order(self, key: str) -> tuple[int, str]:
        """Failpoints and points first, so that restarted processes do not crash at them again;
        then what
        the services depend on (connections, links, the LLM, the infrastructure); the target's
        own processes last, so that they restart into a healthy system."""
        if key == "failpoint" or key.startswith("point:"):
            return (0, key)
        return (2 if key in self.spec.services else 1, key)

    # ------------------------------------------------------------------ invariants
    def _snapshot(self) -> Snapshot | None:
        if "postgres" in self.active:
            return None
        try:
            return self.target.snapshot(timeout=1.0)
        except AdapterError:
            raise  # the adapter's mistake, not the system's: say so
        except Exception:  # noqa: BLE001 - no snapshot means "unknown" for this step
            return None

    @invariant()
    def safety(self) -> None:
        snapshot = self._snapshot()
        ctx = CheckContext(self.model, snapshot, self.target.feeds(), self.history)
        ctx.llm_records = self._llm_records()
        results = [inv.check(ctx) for inv in self.safety_invariants]
        if snapshot is not None:
            self.model.saw(snapshot, at=time.monotonic() - self.history.started)
            unfinished = len(self.target.telegram.unfinished())
            self._note_pending({**dict(snapshot.pending), "telegram_deliveries": unfinished})
        self._found(_failed(results))

    def _note_pending(self, pending: Mapping[str, Any]) -> None:
        depth = pending_depth(pending)
        if self.queue_depth and self.queue_depth[-1].pending == depth:
            return
        self.queue_depth.append(PendingSample(time.monotonic() - self.history.started, depth))

    def _quiescent(self) -> bool:
        """Whether nothing is left to do (the target's pending work is empty); the counts join
        the example's queue depth."""
        pending = self.target.pending_work()
        self._note_pending(pending)
        return not pending

    def _found(self, failed: list[Result]) -> None:
        """Keep the first sighting of each violated invariant; report them all at teardown.

        Raising at once would end the example at whichever step the violation happened to
        become visible, which on a real system varies from run to run; Hypothesis would then
        see one choice sequence draw differently and give up on it.
        """
        known = {finding.invariant for finding in self.findings}
        for result in failed:
            if result.invariant not in known:
                known.add(result.invariant)
                detail = f"after step {len(self.steps)}: {result.detail}"
                self.findings.append(Result(result.invariant, result.kind, result.verdict, detail))

    def teardown(self) -> None:
        # Hypothesis calls teardown in a ``finally``: an exception in flight means a step failed.
        in_flight = sys.exc_info()[1]
        self.teardown_at = time.monotonic() - self.history.started
        try:
            if in_flight is None:
                self._check_liveness_healed()
            elif not isinstance(in_flight, KeyboardInterrupt):
                self._heal_after_error(in_flight)
            # On Ctrl-C, SIGTERM or a spent budget nothing is healed here: the run is ending, and
            # stopping a local stack ends every fault with it, while an attached stack's owner
            # heals the faults its lease still lists.
        finally:
            failure = in_flight or sys.exc_info()[1]
            self.target.close()
            self._note_coverage()
            self.recorder.example_finished(self)
            if _is_finding(failure):
                # Whatever the failure left inside the app (a dead pool, a stuck task) must not
                # decide the next example: start it from fresh app processes.
                restart_app = getattr(self.stack, "restart_app", None)
                if restart_app is not None:
                    restart_app()

    def _note_coverage(self) -> None:
        """What this example reached and faulted; the points it reached join the catalogue,
        and the search is told how much it covered that no example had before."""
        points = getattr(self.stack, "points", None)
        if points is None:
            return
        try:
            fired = points.fired()
            reached = points.reached()
            self.coverage.reached = dict(reached.counts)
            self.coverage.calls = sorted(reached.calls)
            new_points = self.catalogue.learn(points.points().values(), reached)
        except OSError:
            return
        applied = [
            op["value"]
            for op in self.history.to_json()
            if op["f"] == "fault" and op["type"] == "invoke"
        ]
        for fault in applied:
            if isinstance(fault, dict) and fault.get("kind") == "point":
                faulted = PointFault(**{k: v for k, v in fault.items() if k != "kind"})
                self.coverage.faulted.append(
                    FaultedPoint(
                        faulted.service,
                        faulted.point,
                        faulted.when,
                        faulted.action,
                        faulted.arm.id in fired,
                    )
                )
        if currently_in_test_context():
            novelty = self.catalogue.novelty(self.coverage) + new_points
            hypothesis_target(float(novelty), label="point faults and points not covered before")

    def _check_liveness_healed(self) -> None:
        """Check liveness; if that breaks down (not a violation: an error), heal before the
        error goes on, so that nothing after it (a fresh start of the app) meets a fault."""
        try:
            self._check_liveness()
        except (SafetyViolation, LivenessViolation):
            raise
        except Exception as error:
            self._heal_after_error(error)
            raise

    def _heal_after_error(self, error: BaseException) -> None:
        # Hypothesis's own control flow (StopTest, rejected assumptions) is not a finding.
        if _is_finding(error) and not isinstance(error, SafetyViolation | LivenessViolation):
            self.recorder.error(error)
        try:
            self._heal_everything()
        except Exception as heal_error:  # noqa: BLE001 - the stack's own heal comes next
            self.history.invoke("nemesis", "heal-all", repr(heal_error))
            self.stack.heal()

    def _let_armed_failpoint_fire(self) -> None:
        """Before the final heal, give an armed failpoint or point fault the chance to be
        reached: otherwise the heal that follows the last step would disarm it before the work
        gets there."""
        waiting: list[Callable[[], bool]] = []
        fault = self.active.get("failpoint")
        failpoints = getattr(self.stack, "failpoints", None)
        if isinstance(fault, ArmFailpoint) and failpoints is not None:
            name = fault.name
            waiting.append(lambda: bool(failpoints.hits().get(name)))
        points = [f for f in self.active.values() if isinstance(f, PointFault)]
        if points:
            waiting.append(lambda: all(point.fired(self.stack) for point in points))
        if not waiting:
            return
        quiet_since: float | None = None

        def fired_or_idle() -> bool:
            # Idle must hold for a moment: a task between its receipt and its start (acked on
            # receipt, not yet counted as running) looks idle for a few milliseconds.
            nonlocal quiet_since
            if all(fired() for fired in waiting):
                return True
            if not self._quiescent():
                quiet_since = None
                return False
            quiet_since = quiet_since if quiet_since is not None else time.monotonic()
            return time.monotonic() - quiet_since >= QUIET_CONFIRM_SECONDS

        with contextlib.suppress(WaitTimeout):
            wait_until(fired_or_idle, timeout=self.spec.limits.settle, what="the armed faults")

    def _heal_fired_points(self) -> None:
        """A point fault that has fired has done its work: restart what it crashed now, as a
        supervisor would, so that the waits below watch a pipeline that can still move."""
        for key in [k for k, fault in self.active.items() if isinstance(fault, PointFault)]:
            fault = self.active[key]
            if isinstance(fault, PointFault) and fault.fired(self.stack):
                with contextlib.suppress(ServiceNotReady):  # the final heal decides
                    self._heal(key)

    def _let_timed_llm_fault_run_out(self) -> None:
        """Before the final heal, let an LLM fault with a duration run its course unless the
        pipeline is idle: a heal right after the last step would clear it before the work that
        was delivered just before reaches the LLM, and nothing would have met the fault."""
        fault = self.active.get("llm")
        if not isinstance(fault, LLMFault) or fault.seconds is None:
            return
        ends = self.applied_at["llm"] + fault.seconds
        with contextlib.suppress(WaitTimeout):
            wait_until(
                lambda: time.monotonic() >= ends or self._quiescent(),
                timeout=max(0.0, ends - time.monotonic()),
                what="the LLM fault to run out",
                max_interval=0.1,
            )

    def _let_broken_llm_exhaust_retries(self) -> None:
        """With the LLM broken for good, wait (bounded) for the pipeline to give up on the
        messages that need it before healing: a correct one dead-letters them."""
        fault = self.active.get("llm")
        if not isinstance(fault, LLMFault) or fault.seconds is not None:
            return
        if len(self.active) > 1:
            return  # another fault holds the pipeline up: it would not give up in time anyway

        def gave_up_or_over_bound() -> bool:
            # A pipeline that retries past its bound has already shown what it would do;
            # waiting out the rest of the settle time would find nothing new.
            snapshot = self._snapshot()
            if snapshot is not None and any(
                count > self.model.max_attempts for _, _, count in snapshot.attempts
            ):
                return True
            return self._quiescent()

        with contextlib.suppress(WaitTimeout):
            wait_until(
                gave_up_or_over_bound,
                timeout=self.spec.limits.give_up,
                what="the pipeline to give up on the broken LLM",
                max_interval=0.2,
            )

    def _check_liveness(self) -> None:
        self._let_armed_failpoint_fire()
        self._heal_fired_points()
        self._let_timed_llm_fault_run_out()
        self._let_broken_llm_exhaust_retries()
        self._heal_everything()
        # The probe goes first: a system that cannot take new work after the heal will not
        # quiesce either (its clients keep retrying), and waiting out the whole quiescence
        # deadline to learn that would only make the finding slower.
        recovery = self._recovery_probe()
        quiesced = None if recovery is None else self._wait_quiescent()
        self.model.accepted = self.target.telegram.accepted_ids()
        self.model.retrying = self.target.telegram.retrying_ids()
        self.target.wait_feeds_caught_up(FEED_CATCH_UP_SECONDS)
        snapshot = self._snapshot()
        ctx = CheckContext(
            self.model,
            snapshot,
            self.target.feeds(),
            self.history,
            quiesced=quiesced,
            pending=self.pending_at_deadline,
            recovery_seconds=recovery,
            recovery_bound=self._recovery_bound,
            llm_records=self._llm_records(),
        )
        results = [inv.check(ctx) for inv in self.safety_invariants + self.liveness_invariants]
        self._found(_failed(results))
        failed = self.findings
        if failed:
            self.recorder.violation(failed)
            kind = SafetyViolation if any(r.kind == "safety" for r in failed) else LivenessViolation
            raise kind("\n".join(str(result) for result in failed))

    def _wait_quiescent(self) -> bool:
        began = time.monotonic()
        try:
            wait_until(
                self._quiescent,
                timeout=self.config.quiescence_timeout or self.spec.limits.quiescence_timeout,
                what="the pipeline to quiesce",
                max_interval=0.05,
            )
            quiesced = True
            self.quiescent_at = time.monotonic() - self.history.started
        except WaitTimeout:
            quiesced = False
            with contextlib.suppress(Exception):
                self.pending_at_deadline = self.target.pending_work()
        self.recorder.quiesced(time.monotonic() - began)
        return quiesced

    @property
    def _recovery_bound(self) -> float:
        return self.config.recovery_bound or self.spec.limits.recovery_bound

    def _recovery_probe(self) -> float | None:
        return recovery_probe(self.target, self.model, self._recovery_bound)


def _is_finding(error: BaseException | None) -> bool:
    """A violation or an unexpected error, as opposed to Hypothesis's own control flow."""
    return isinstance(error, Exception) and not isinstance(error, HypothesisException)


def bind(
    stack: Stack,
    config: ChaosConfig,
    recorder: ExampleObserver,
    catalogue: PointCatalogue | None = None,
) -> type[ChaosMachine]:
    """A ChaosMachine subclass bound to one running stack and run configuration, with the
    rules its target's adapter allows; point faults draw from ``catalogue`` (the run's)."""
    spec: TargetSpec = stack.target
    check_config(config, spec)
    driver_class(spec)  # a driver that cannot be loaded is the adapter's mistake: say so now
    namespace: dict[str, Any] = {
        "stack": stack,
        "config": config,
        "recorder": recorder,
        "usable_faults": usable_faults(stack, config),
        "catalogue": catalogue if catalogue is not None else PointCatalogue(),
        "__module__": __name__,
    }
    links = getattr(stack, "links", None)
    has_points = getattr(stack, "points", None) is not None
    namespace.update(
        target_rules(spec, config, services=set(stack.services), links=links, points=has_points)
    )
    return type("ChaosMachine", (ChaosMachine,), namespace)


def usable_faults(stack: Stack, config: ChaosConfig) -> frozenset[str]:
    """The configured fault kinds, less those the stack says it cannot perform."""
    unsupported = set(getattr(stack, "unsupported_faults", ()))
    if getattr(stack, "points", None) is None:
        unsupported.add("point")
    return frozenset(config.faults) - unsupported


def check_config(config: ChaosConfig, spec: TargetSpec) -> None:
    """Refuse a configuration naming what the target does not have."""
    known = {invariant.name for invariant in ALL_INVARIANTS}
    unknown_invariants = sorted(set(config.skip_invariants) - known)
    if unknown_invariants:
        raise ValueError(
            f"unknown invariant(s) {', '.join(unknown_invariants)};"
            " list them with: chaos-model invariants"
        )
    if config.failpoints is not None:
        unknown = sorted(set(config.failpoints) - set(spec.failpoints))
        if unknown or not config.failpoints:
            raise ValueError(
                f"unknown failpoint(s) {', '.join(unknown) or '(none given)'} for target"
                f" {spec.name}; known: {', '.join(spec.failpoints) or 'none'}"
            )


def target_rules(
    spec: TargetSpec,
    config: ChaosConfig,
    *,
    services: set[str] | None = None,
    links: Mapping[str, str] | None = None,
    points: bool = False,
) -> dict[str, Any]:
    """The target-dependent rules, each drawing only from what the adapter declares and the
    stack can control (``services``, ``links``); a rule with nothing to draw from is left out."""
    link_names = tuple(spec.links() if links is None else links)
    failpoints = tuple(config.failpoints or spec.failpoints)
    actions = config.failpoint_actions
    if actions == ("crash", "hang"):
        actions = FAILPOINT_ACTIONS
    rules: dict[str, Any] = {}

    def add(rule_name: str, guard: Any, /, **strategies: Any) -> None:
        if any(getattr(strategy, "_chaos_empty", False) for strategy in strategies.values()):
            return
        rules[rule_name] = _rule_calling(rule_name, guard, strategies)

    def draw(values: tuple[Any, ...]) -> Any:
        strategy = st.sampled_from(values) if values else st.nothing()
        strategy._chaos_empty = not values  # type: ignore[attr-defined]
        return strategy

    for kind in ("pause", "kill", "stop"):
        candidates = spec.services_with(kind)
        if services is not None:
            candidates = tuple(name for name in candidates if name in services)
        add(kind, _may(kind), service=draw(candidates))
    add("partition", _may("partition"), link=draw(link_names))
    add("network", _may("network"), link=draw(link_names), toxic=st.sampled_from(TOXICS))
    add(
        "latency_ramp",
        _may("network"),
        link=draw(link_names),
        latency_ms=st.sampled_from([500, 2000]),
    )
    add("failpoint", _may("failpoint"), name=draw(failpoints), action=draw(actions))
    if points:
        guard = lambda self: self._may_inject("point") and len(self.catalogue) > 0  # noqa: E731
        index = st.integers(min_value=0, max_value=2**16)
        add("point_fault", guard, index=index, mode=st.sampled_from(POINT_MODES))
    if spec.has_dashboard_read:
        add("read_back", None)
    if spec.has_feed:
        add("open_feed", None, name=st.sampled_from(FEEDS))
        # Preconditions read only the model's own state, never the live system: Hypothesis
        # must see the same choices when it replays a choice sequence.
        add("drop_feed", lambda self: bool(self.opened_feeds), name=st.sampled_from(FEEDS))
    return rules


def _may(kind: str) -> Any:
    return lambda self: self._may_inject(kind)


def _rule_calling(name: str, guard: Any, strategies: dict[str, Any]) -> Any:
    base: Any = getattr(ChaosMachine, name)

    def step(self: ChaosMachine, **kwargs: Any) -> None:
        base(self, **kwargs)

    step.__name__ = step.__qualname__ = name
    step.__doc__ = base.__doc__
    decorated: Any = rule(**strategies)(step)  # type: ignore[no-untyped-call]
    return precondition(guard)(decorated) if guard is not None else decorated


def recovery_probe(target: Target, model: ModelState, bound: float) -> float | None:
    """Send one fresh update; return the seconds it took to reach ``extracted`` (None if it
    did not within ``bound``)."""
    update = BOT.message(PROBE_CHAT, "recovery probe")
    update_id: int = update["update_id"]
    model.texts[update_id] = "recovery probe"
    began = time.monotonic()
    target.deliver(update)

    def extracted() -> bool:
        snapshot = target.snapshot(timeout=1.0)
        return any(
            row.update_id == update_id and row.stage == "extracted" for row in snapshot.messages
        )

    try:
        # Every example ends with this probe: poll finely, it usually takes tens of ms.
        wait_until(extracted, timeout=bound, what="the recovery probe", max_interval=0.02)
    except WaitTimeout:
        return None
    finally:
        model.sent[update_id] = PROBE_CHAT
    return time.monotonic() - began
