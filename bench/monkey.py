"""The chaos-monkey baseline: the chaos testing teams do today, to compare chaos-model against.

A steady Telegram load (a few updates a second over a few chats, delivered by chaos-model's own
Telegram simulator) and a dashboard client that keeps its live feed open, while random faults
hit random services and links at random intervals, as Pumba or Chaos Monkey do: kills, pauses
(SIGSTOP), clean stops, partitions and network toxics, each healed after a random time. There
is no model, no search and no shrinking; what it shares with chaos-model is the judge. The
safety invariants are checked every second; at the end of a round every fault is healed and
every invariant is checked as chaos-model checks them at the end of an example (the recovery
probe, then the quiescence wait), so that a verdict means the same thing in both.

It works in rounds: reset the stack, load and faults for ``round_seconds``, heal, judge; until a
violation or the budget is spent. What a person has to read of a failure is the failing round's
log: every update it sent and every fault it injected.

    python bench/monkey.py --bug core_nats --seed 1 --budget 60
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos_model._wait import WaitTimeout, wait_until
from chaos_model.adapter import TargetSpec
from chaos_model.errors import AdapterError, ServiceNotReady
from chaos_model.faults import (
    Fault,
    KillService,
    NetworkToxic,
    Partition,
    PauseService,
    StopService,
)
from chaos_model.guard import ensure_injectable
from chaos_model.history import History
from chaos_model.invariants import CheckContext, ModelState, Result, Verdict, applicable
from chaos_model.machine import FEED_CATCH_UP_SECONDS, TOXICS, recovery_probe
from chaos_model.observe import Snapshot
from chaos_model.stack import Stack
from chaos_model.target import Target, make_target
from chaos_model.telegram import BotApi, run_chat_id

PROCESS_FAULTS: dict[str, type[KillService | PauseService | StopService]] = {
    "kill": KillService,
    "pause": PauseService,
    "stop": StopService,
}
#: what the steady load says: ordinary messages of a bot's users
LOAD_TEXTS = (
    "hello there",
    "remind me to buy milk tomorrow",
    "привет, как дела?",
    "the meeting moved to 3pm, room 4",
    "日本語のテキスト",
    "ok 👍",
)
DASHBOARD_FEED = "dashboard-a"
#: the bot whose updates every round sends: ids keep growing across rounds, as a bot's do
BOT = BotApi()


@dataclass(frozen=True)
class MonkeyConfig:
    """How the monkey behaves. The defaults are a realistic set-up, not a weakened one: a fault
    every 3 s on average (Pumba's examples kill every few seconds), up to two at once."""

    round_seconds: float = 20.0
    updates_per_second: float = 4.0
    chats: int = 3
    #: seconds between two fault injections, drawn uniformly
    fault_interval: tuple[float, float] = (1.0, 5.0)
    #: seconds a fault is held before it is healed, drawn uniformly
    fault_seconds: tuple[float, float] = (0.5, 5.0)
    max_concurrent_faults: int = 2
    safety_every: float = 1.0
    #: a dashboard client keeps the live feed open and reconnects (resuming) when it drops
    watch_dashboard: bool = True
    max_rounds: int = 1_000

    def __post_init__(self) -> None:
        for name in ("round_seconds", "updates_per_second", "safety_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        for name in ("fault_interval", "fault_seconds"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high")
        if self.chats < 1 or self.max_concurrent_faults < 1 or self.max_rounds < 1:
            raise ValueError("chats, max_concurrent_faults and max_rounds must be at least 1")


@dataclass(frozen=True)
class Candidate:
    """A fault the monkey may inject, and what it occupies while applied (a service or a link:
    two faults never hold the same one at once)."""

    key: str
    fault: Fault


@dataclass(frozen=True)
class PlannedFault:
    at: float
    seconds: float
    candidate: Candidate


@dataclass(frozen=True)
class Event:
    """One thing a round does at ``at`` seconds from its start."""

    at: float
    action: str  # "heal", "apply", "deliver" or "check", which is also the order at equal times
    fault: PlannedFault | None = None
    number: int = 0


ACTION_ORDER = {"heal": 0, "apply": 1, "deliver": 2, "check": 3}


@dataclass
class MonkeyResult:
    seed: int
    budget: float
    found: bool = False
    seconds_to_first_violation: float | None = None
    invariants: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    #: operations and faults of the failing round: what a person reads, there is no shrinking
    log_length: int | None = None
    log: list[str] = field(default_factory=list)
    rounds: int = 0
    deliveries: int = 0
    faults: int = 0
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------- the seeded schedule
def fault_menu(
    spec: TargetSpec,
    services: Iterable[str],
    links: Iterable[str],
    unsupported: Iterable[str] = (),
) -> dict[str, tuple[Candidate, ...]]:
    """Every fault the monkey may inject, by kind: the adapter's services for each process
    fault, every link for partitions and each network toxic; kinds with nothing are left out."""
    controllable, link_names, refused = set(services), sorted(links), set(unsupported)
    menu: dict[str, tuple[Candidate, ...]] = {}
    for kind, fault_class in PROCESS_FAULTS.items():
        targets = [name for name in spec.services_with(kind) if name in controllable]
        if kind not in refused and targets:
            menu[kind] = tuple(Candidate(name, fault_class(name)) for name in targets)
    if "partition" not in refused and link_names:
        menu["partition"] = tuple(Candidate(f"link:{ln}", Partition(ln)) for ln in link_names)
    if "network" not in refused and link_names:
        menu["network"] = tuple(
            Candidate(f"link:{ln}", NetworkToxic(ln, toxic))
            for ln in link_names
            for toxic in TOXICS
        )
    return menu


def stack_menu(stack: Stack) -> dict[str, tuple[Candidate, ...]]:
    """The fault menu of a running stack: what its adapter allows and the stack can do."""
    links = getattr(stack, "links", None)
    return fault_menu(
        stack.target,
        stack.services,
        stack.target.links() if links is None else links,
        getattr(stack, "unsupported_faults", ()),
    )


def plan_faults(
    rng: random.Random, menu: Mapping[str, tuple[Candidate, ...]], config: MonkeyConfig
) -> tuple[PlannedFault, ...]:
    """A round's faults: at random intervals a random kind, a random target of it and a random
    duration; a draw is dropped when its target is already faulted or the most faults are on."""
    if not menu:
        raise ValueError("the stack allows no fault the monkey knows (kill, pause, stop, links)")
    kinds = sorted(menu)
    planned: list[PlannedFault] = []
    at = rng.uniform(*config.fault_interval)
    while at < config.round_seconds:
        candidate = rng.choice(menu[rng.choice(kinds)])
        seconds = rng.uniform(*config.fault_seconds)
        held = [p for p in planned if p.at <= at < p.at + p.seconds]
        free = candidate.key not in {p.candidate.key for p in held}
        if free and len(held) < config.max_concurrent_faults:
            planned.append(PlannedFault(round(at, 3), round(seconds, 3), candidate))
        at += rng.uniform(*config.fault_interval)
    return tuple(planned)


def timeline(faults: Iterable[PlannedFault], config: MonkeyConfig) -> list[Event]:
    """Everything a round does, in order: the steady load, each fault and its heal, the safety
    checks."""
    deliveries = int(config.round_seconds * config.updates_per_second)
    checks = int(config.round_seconds / config.safety_every)
    events = [Event(n / config.updates_per_second, "deliver", number=n) for n in range(deliveries)]
    events += [Event((n + 1) * config.safety_every, "check") for n in range(checks)]
    for fault in faults:
        events.append(Event(fault.at, "apply", fault))
        events.append(Event(fault.at + fault.seconds, "heal", fault))
    return sorted(events, key=lambda e: (e.at, ACTION_ORDER[e.action]))


# ---------------------------------------------------------------------- one round
@dataclass
class RoundOutcome:
    findings: list[Result]
    #: monotonic time the first violation was seen (None: none)
    first_seen: float | None
    log: list[str]
    deliveries: int
    faults: Counter[str]


class MonkeyRound:
    """One round on a freshly reset stack: the timeline until its end (or the budget's, or the
    first safety violation), then heal everything and judge."""

    def __init__(
        self, stack: Stack, faults: tuple[PlannedFault, ...], config: MonkeyConfig, deadline: float
    ) -> None:
        self.stack = stack
        self.spec: TargetSpec = stack.target
        self.config = config
        self.events = timeline(faults, config)
        self.deadline = deadline
        self.history = History()
        self.model = ModelState(max_attempts=self.spec.limits.max_attempts)
        self.safety_invariants, self.liveness_invariants = applicable(self.spec)
        self.active: dict[str, Fault] = {}
        self.findings: list[Result] = []
        self.first_seen: float | None = None
        self.log: list[str] = []
        self.deliveries = 0
        self.faults: Counter[str] = Counter()
        self.started = 0.0
        self.pending_at_deadline: dict[str, Any] = {}
        #: False from the first fault until every fault and the stack are healed
        self.healed = True

    def play(self) -> RoundOutcome:
        self.stack.reset()
        self.target: Target = make_target(self.stack, self.history)
        try:
            self.started = time.monotonic()
            self._watch_dashboard()
            self._run_timeline()
            self._judge()
        finally:
            self._heal_and_close()
        return RoundOutcome(self.findings, self.first_seen, self.log, self.deliveries, self.faults)

    def _run_timeline(self) -> None:
        for event in self.events:
            due = self.started + event.at
            if due > self.deadline or self.findings:
                return
            # Pacing the load and the faults to their schedule, not synchronisation.
            time.sleep(max(0.0, due - time.monotonic()))
            self._do(event)

    def _do(self, event: Event) -> None:
        if event.action == "deliver":
            self._deliver(event.number)
        elif event.action == "apply" and event.fault is not None:
            self._apply(event.fault)
        elif event.action == "heal" and event.fault is not None:
            self._heal_planned(event.fault)
        elif event.action == "check":
            self._watch_dashboard()
            self._check_safety()

    def _note(self, line: str) -> None:
        self.log.append(f"{time.monotonic() - self.started:6.2f}s {line}")

    # ------------------------------------------------------------------ load
    def _deliver(self, number: int) -> None:
        chat = number % self.config.chats
        update = BOT.message(run_chat_id(chat), LOAD_TEXTS[number % len(LOAD_TEXTS)])
        update_id: int = update["update_id"]
        self.model.sent[update_id] = chat
        self.target.deliver(update)
        self.deliveries += 1
        self._note(f"deliver(chat={chat}, update_id={update_id})")

    def _watch_dashboard(self) -> None:
        """Open the dashboard's feed, or reopen it (resuming) if a fault dropped it, as a
        dashboard in a browser does."""
        if self.config.watch_dashboard and self.spec.has_feed:
            self.target.feed_open(DASHBOARD_FEED)

    # ------------------------------------------------------------------ faults
    def _apply(self, planned: PlannedFault) -> None:
        key, fault = planned.candidate.key, planned.candidate.fault
        if key in self.active or len(self.active) >= self.config.max_concurrent_faults:
            return  # a heal that ran late still holds it: dropped, as the schedule drops draws
        self._note(f"{fault.describe()} for {planned.seconds:.1f}s")
        op = self.history.invoke("nemesis", "fault", fault.to_json())
        self.healed = False  # before the attempt: a fault that fails halfway is healed too
        try:
            fault.apply(self.stack)
        except BaseException as error:
            self.history.complete(op, "info", error=repr(error))
            raise
        self.history.complete(op, "ok")
        self.active[key] = fault
        self.faults[fault.kind] += 1

    def _heal_planned(self, planned: PlannedFault) -> None:
        key = planned.candidate.key
        if self.active.get(key) is planned.candidate.fault:
            self._heal(key)

    def _heal(self, key: str) -> None:
        fault = self.active.pop(key)
        op = self.history.invoke("nemesis", "heal", fault.to_json())
        try:
            fault.heal(self.stack)
        except ServiceNotReady as error:
            self.history.complete(op, "info", error=str(error).splitlines()[0])
            raise
        self.history.complete(op, "ok")

    def _heal_everything(self) -> None:
        """As chaos-model heals before its final checks: each fault, what the services depend
        on first and the target's own processes last; then the whole stack, which fails if
        anything is still not ready."""
        for key in sorted(self.active, key=self._heal_order):
            with contextlib.suppress(ServiceNotReady):
                self._heal(key)
        op = self.history.invoke("nemesis", "heal-all")
        healed = self.stack.heal()
        self.history.complete(op, "ok", value=healed)
        self.healed = True

    def _heal_order(self, key: str) -> tuple[int, str]:
        return (2 if key in self.spec.services else 1, key)

    def _heal_and_close(self) -> None:
        """Whatever happened (a violation, an error, Ctrl-C), leave no fault behind."""
        try:
            if not self.healed:
                try:
                    self._heal_everything()
                except Exception:  # noqa: BLE001 - the stack's own heal is the last resort
                    self.stack.heal()
        finally:
            self.target.close()

    # ------------------------------------------------------------------ the judge
    def _snapshot(self) -> Snapshot | None:
        if "postgres" in self.active:
            return None
        try:
            return self.target.snapshot(timeout=1.0)
        except AdapterError:
            raise
        except Exception:  # noqa: BLE001 - no snapshot means "unknown" for this check
            return None

    def _check_safety(self) -> None:
        snapshot = self._snapshot()
        ctx = CheckContext(self.model, snapshot, self.target.feeds(), self.history)
        results = [invariant.check(ctx) for invariant in self.safety_invariants]
        if snapshot is not None:
            for row in snapshot.messages:
                self.model.seen_stage[row.id] = row.stage
        self._found(results)

    def _found(self, results: Iterable[Result]) -> None:
        known = {finding.invariant for finding in self.findings}
        for result in results:
            if result.verdict is Verdict.INVALID and result.invariant not in known:
                known.add(result.invariant)
                self.first_seen = self.first_seen or time.monotonic()
                at = time.monotonic() - self.started
                detail = f"at {at:.1f}s of the round: {result.detail}"
                self.findings.append(Result(result.invariant, result.kind, result.verdict, detail))

    def _judge(self) -> None:
        """chaos-model's final check (``ChaosMachine._check_liveness``): heal, the recovery
        probe, then the quiescence wait, then every invariant."""
        self._heal_everything()
        recovery = self._recovery_probe()
        quiesced = None if recovery is None else self._wait_quiescent()
        self.model.accepted = self.target.telegram.accepted_ids()
        self.model.retrying = self.target.telegram.retrying_ids()
        self.target.wait_feeds_caught_up(FEED_CATCH_UP_SECONDS)
        ctx = CheckContext(
            self.model,
            self._snapshot(),
            self.target.feeds(),
            self.history,
            quiesced=quiesced,
            pending=self.pending_at_deadline,
            recovery_seconds=recovery,
            recovery_bound=self.spec.limits.recovery_bound,
        )
        invariants = self.safety_invariants + self.liveness_invariants
        self._found(invariant.check(ctx) for invariant in invariants)

    def _wait_quiescent(self) -> bool:
        try:
            wait_until(
                self.target.quiescent,
                timeout=self.spec.limits.quiescence_timeout,
                what="the pipeline to quiesce",
                max_interval=0.05,
            )
            return True
        except WaitTimeout:
            with contextlib.suppress(Exception):
                self.pending_at_deadline = self.target.pending_work()
            return False

    def _recovery_probe(self) -> float | None:
        return recovery_probe(self.target, self.model, self.spec.limits.recovery_bound)


# ---------------------------------------------------------------------- the run
def run_monkey(
    stack: Stack,
    seed: int,
    budget: float,
    config: MonkeyConfig | None = None,
) -> MonkeyResult:
    """Rounds of random faults under load on ``stack`` until a violation or ``budget`` seconds
    are spent (the last round is cut at the budget, then judged). Every fault is healed at the
    end of each round, also on an error or Ctrl-C."""
    ensure_injectable(stack)
    config = config or MonkeyConfig()
    rng = random.Random(seed)
    menu = stack_menu(stack)
    result = MonkeyResult(seed=seed, budget=budget)
    began = time.monotonic()
    deadline = began + budget
    faults: Counter[str] = Counter()
    try:
        while result.rounds < config.max_rounds and time.monotonic() < deadline:
            monkey_round = MonkeyRound(stack, plan_faults(rng, menu, config), config, deadline)
            result.rounds += 1
            outcome = monkey_round.play()
            result.deliveries += outcome.deliveries
            faults.update(outcome.faults)
            if outcome.findings:
                _record_violation(result, outcome, began)
                break
    except Exception as error:  # noqa: BLE001 - an error ends the run and is reported
        result.error = f"{type(error).__name__}: {error}".splitlines()[0][:500]
    finally:
        result.faults = sum(faults.values())
        result.faults_by_kind = dict(sorted(faults.items()))
        result.elapsed = round(time.monotonic() - began, 2)
    if result.found or result.error:
        # What the failure left inside the app (a dead pool, a stuck task) must not decide
        # whatever runs on this stack next.
        restart_app = getattr(stack, "restart_app", None)
        if restart_app is not None:
            restart_app()
    return result


def _record_violation(result: MonkeyResult, outcome: RoundOutcome, began: float) -> None:
    first_seen = outcome.first_seen if outcome.first_seen is not None else time.monotonic()
    result.found = True
    result.seconds_to_first_violation = round(first_seen - began, 2)
    result.invariants = [finding.invariant for finding in outcome.findings]
    result.violations = [str(finding) for finding in outcome.findings]
    result.log = outcome.log
    result.log_length = len(outcome.log)


# ---------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    from chaos_model.cli import parse_duration
    from chaos_model.stack import LocalStack
    from pipeline_app.bugs import KNOWN_BUGS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bug", choices=sorted(KNOWN_BUGS), default=None, help="default: none")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", type=parse_duration, default=60.0, help="e.g. 60, 2m")
    parser.add_argument("--round", type=parse_duration, default=MonkeyConfig.round_seconds)
    args = parser.parse_args(argv)
    config = MonkeyConfig(round_seconds=args.round)
    with LocalStack(bugs=(args.bug,) if args.bug else ()) as stack:
        result = run_monkey(stack, args.seed, args.budget, config)
    print(describe(result))
    if result.found:
        print("\n".join(["", "the failing round's log:", *result.log]))
    return 1 if result.found or result.error else 0


def describe(result: MonkeyResult) -> str:
    """One line: what the monkey found with its seed, in how long, after how much work."""
    work = f"{result.rounds} rounds, {result.deliveries} updates, {result.faults} faults"
    who = f"monkey seed {result.seed}"
    if result.error:
        return f"{who}: ERROR after {result.elapsed:.1f}s ({work}): {result.error}"
    if not result.found:
        return f"{who}: nothing found in {result.elapsed:.1f}s ({work})"
    return (
        f"{who}: found in {result.seconds_to_first_violation:.1f}s"
        f" ({', '.join(result.invariants)}), log of {result.log_length} entries ({work})"
    )


if __name__ == "__main__":
    sys.exit(main())
