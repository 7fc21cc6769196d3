"""Reference side of the differential test (tests/differential.rs).

Runs scenarios through the Python library fluxgate's synchronous CircuitBreaker and
prints what a caller can observe after every step. Input: one JSON scenario per line on
stdin. Output: one JSON line per scenario on stdout, flushed at once, so the Rust test
can also use this process interactively (to shrink a diverging scenario).

The first output line is a greeting with the library's version.

Time is injected: every place the library reads a clock is patched to read the
scenario's manual clock, which only moves when a step says so (a clock advance, or the
duration of a call, advanced inside the called function). Randomness is injected too:
the permit's `random()` returns the draws the scenario supplies for that call, the very
numbers the Rust side's generator yields, and retry jitter is never configured (a call
to `uniform` is an error).

Three adapters bring the reference to the specification where the Rust crate differs on
purpose; each names the paragraph of docs/design-decisions.md that documents it:

- failures keep their duration      -> "Failed calls keep their duration (M-2)"
- the time window forgets on read   -> "A time window forgets on read (W-2)"
- Backoff past a thousand reopens   -> "Backoff has no reopen limit (RT-3)"
"""

from __future__ import annotations

import json
import sys
import types
from importlib.metadata import version

import fluxgate
import fluxgate.circuitbreaker as cb_module
import fluxgate.metric as metric_module
import fluxgate.permits as permits_module
import fluxgate.retries as retries_module
from fluxgate import CallNotPermittedError, CircuitBreaker
from fluxgate.metric import Metric, Record
from fluxgate.permits import All as PermitAll
from fluxgate.permits import RampUp, Random
from fluxgate.retries import Always, Backoff, Cooldown, Never
from fluxgate.trackers import All as TrackAll
from fluxgate.trackers import TypeOf
from fluxgate.trippers import (
    AvgLatency,
    Closed,
    FailureRate,
    FailureStreak,
    HalfOpened,
    MinRequests,
    SlowRate,
)
from fluxgate.windows import CountWindow, TimeWindow

# Wall-clock origin of every scenario (a whole number of seconds, so time-window buckets
# start on the same boundaries as the Rust side's, which counts from its monotonic 0).
T0 = 1_700_000_000.0


class HarnessError(Exception):
    """The harness itself went wrong (not a finding about either library)."""


# ---------------------------------------------------------------- injected clock


class ManualClock:
    now = T0


def fake_time() -> float:
    return ManualClock.now


def advance(seconds: float) -> None:
    ManualClock.now += seconds


# circuitbreaker.py: `time.time()` (changed_at) and `time.perf_counter()` (durations).
cb_module.time = types.SimpleNamespace(time=fake_time, perf_counter=fake_time)
# retries.py: `time.time()` (cooldown and backoff elapsed time).
retries_module.time = types.SimpleNamespace(time=fake_time)
# permits.py: `from time import time` (RampUp elapsed time).
permits_module.time = fake_time


# metric.py: Record.timestamp is `field(default_factory=time.time)`; the dataclass bound
# that function object into its generated __init__, so swap it in the closure cell.
def _patch_record_timestamp() -> None:
    init = Record.__init__
    for name, cell in zip(init.__code__.co_freevars, init.__closure__ or ()):
        if cell.cell_contents is metric_module.time.time:
            cell.cell_contents = fake_time
            return
    raise HarnessError(f"Record.__init__ has no time.time cell: {init.__code__.co_freevars}")


_patch_record_timestamp()

# ---------------------------------------------------------------- injected randomness

DRAWS: list[float] = []


def fake_random() -> float:
    if not DRAWS:
        raise HarnessError("the permit drew more random numbers than the step supplied")
    return DRAWS.pop(0)


def no_uniform(*_args: object) -> float:
    raise HarnessError("retry jitter is not deterministic and must not be configured")


permits_module.random = fake_random
retries_module.uniform = no_uniform


def self_check() -> None:
    ManualClock.now = T0 + 12.5
    assert Record(success=True).timestamp == T0 + 12.5, "Record clock not patched"
    ManualClock.now = T0


self_check()

# ---------------------------------------------------------------- adapters


class SpecTimeWindow(TimeWindow):
    """W-2, docs/design-decisions.md "A time window forgets on read (W-2)".

    The library drops a stale bucket only when a new record lands in the same slot, so
    buckets of seconds older than the window stay counted (also at write time, for the
    other slots). The specification aggregates the records of the last `size` seconds:
    this reads only the buckets stamped with one of those seconds. Recording is the
    library's own code.
    """

    def reset(self) -> None:
        # The library's reset builds one empty Metric per second of the window on every
        # transition; Metric is frozen and never updated in place, so sharing one empty
        # value gives the same state without the cost (spins of many transitions).
        empty = Metric.empty()
        self._buckets = [empty] * self._size
        self._timestamps = [0] * self._size
        self._total = empty

    def get_metric(self) -> Metric:
        now = int(fake_time())
        total = Metric.empty()
        for bucket, stamp in zip(self._buckets, self._timestamps):
            if bucket.total_count and now - self._size < stamp <= now:
                total = total + bucket
        return total


class SpecBackoff(Backoff):
    """RT-3, docs/design-decisions.md "Backoff has no reopen limit (RT-3)".

    `initial * multiplier ** reopens` raises OverflowError once the power leaves the
    float range (about a thousand reopens with multiplier 2); the wait it stands for is
    `max`. Every wait the library can compute is left as it is.
    """

    def __call__(self, changed_at: float, reopens: int) -> bool:
        try:
            return super().__call__(changed_at, reopens)
        except OverflowError:
            return fake_time() - changed_at >= self._max


def spec_failures(breaker: CircuitBreaker, current: dict) -> None:
    """M-2, docs/design-decisions.md "Failed calls keep their duration (M-2)".

    The library records a failed call with duration 0 and no slow flag; the
    specification keeps its real duration (the time the called function took, known to
    the driver because the function moves the clock itself).
    """

    def record_failure() -> None:
        duration = current["duration"]
        breaker._consecutive_failures += 1
        breaker._window.record(
            Record(
                success=False,
                duration=duration,
                slow_at=cb_module._classify_slow(duration, breaker._slow_thresholds),
            )
        )

    breaker._record_failure = record_failure


# ---------------------------------------------------------------- scenarios


class Tracked(Exception):
    pass


class Untracked(Exception):
    pass


def tripper(spec: list):
    kind = spec[0]
    if kind == "and":
        return tripper(spec[1]) & tripper(spec[2])
    if kind == "or":
        return tripper(spec[1]) | tripper(spec[2])
    if kind == "min":
        return MinRequests(spec[1])
    if kind == "rate":
        return FailureRate(spec[1])
    if kind == "slow":
        return SlowRate(spec[1], threshold=spec[2])
    if kind == "avg":
        return AvgLatency(spec[1])
    if kind == "streak":
        return FailureStreak(spec[1])
    if kind == "closed":
        return Closed()
    if kind == "half_open":
        return HalfOpened()
    raise HarnessError(f"unknown tripper {spec!r}")


def build(cfg: dict, signals: list) -> CircuitBreaker:
    w = cfg["window"]
    window = CountWindow(w[1]) if w[0] == "count" else SpecTimeWindow(w[1])
    tracker = TrackAll() if cfg["tracker"] == "all" else TypeOf(Tracked)
    r = cfg["retry"]
    retry = {
        "always": lambda: Always(),
        "never": lambda: Never(),
        "cooldown": lambda: Cooldown(r[1]),
        "backoff": lambda: SpecBackoff(r[1], multiplier=r[2], max_duration=r[3]),
    }[r[0]]()
    p = cfg["permit"]
    permit = {
        "all": lambda: PermitAll(),
        "random": lambda: Random(p[1]),
        "rampup": lambda: RampUp(p[1], p[2], p[3]),
    }[p[0]]()
    # The sync breaker has no half-open limit (cfg["max_half_open"]): one call at a time
    # never holds more than one slot, so the Rust side's limit (>= 1) never bites here.
    return CircuitBreaker(
        window=window,
        tracker=tracker,
        tripper=tripper(cfg["tripper"]),
        retry=retry,
        permit=permit,
        listeners=[lambda s: signals.append([s.old_state, s.new_state, s.timestamp - T0])],
    )


REJECTIONS = {
    "Circuit breaker is open": "open",
    "Circuit breaker is half-open, not executing": "half_open",
    "Circuit breaker is forced open": "forced_open",
}

COMMANDS = {
    "reset": CircuitBreaker.reset,
    "disable": CircuitBreaker.disable,
    "metrics_only": CircuitBreaker.metrics_only,
    "force_open": CircuitBreaker.force_open,
}


def call(breaker: CircuitBreaker, kind: str, duration: float, current: dict) -> str:
    current["duration"] = duration

    def work() -> None:
        advance(duration)
        if kind == "fail":
            raise Tracked("tracked")
        if kind == "untracked":
            raise Untracked("untracked")

    try:
        breaker.call(work)
        return "ok"
    except CallNotPermittedError as e:
        return "rejected:" + REJECTIONS[str(e)]
    except (Tracked, Untracked):
        return "err"


def observe(breaker: CircuitBreaker, out, signals) -> dict:
    info = breaker.info()
    m = info.metrics
    return {
        "out": out,
        "state": info.state,
        "reopens": info.reopens,
        "changed_at": info.changed_at - T0,
        "total": m.total_count,
        "failures": m.failure_count,
        "duration": m.total_duration,
        "slow": sorted([t, c] for t, c in m.slow_counts.items() if c),
        "streak": breaker._consecutive_failures,
        "signals": signals,
    }


def run(scenario: dict) -> dict:
    ManualClock.now = T0
    DRAWS.clear()
    signals: list = []
    breaker = build(scenario["cfg"], signals)
    current = {"duration": 0.0}
    spec_failures(breaker, current)
    trace = []
    for step in scenario["steps"]:
        signals.clear()
        out = None
        kind = step[0]
        if kind == "call":
            DRAWS[:] = step[3]
            out = call(breaker, step[1], step[2], current)
        elif kind == "advance":
            advance(step[1])
        elif kind == "cmd":
            COMMANDS[step[1]](breaker)
        elif kind == "spin":
            cycle = step[2]
            for i in range(step[1]):
                COMMANDS[cycle[i % len(cycle)]](breaker)
        else:
            raise HarnessError(f"unknown step {step!r}")
        if kind == "spin":
            summary = {"n": len(signals), "last": signals[-1] if signals else None}
            trace.append(observe(breaker, out, summary))
        else:
            trace.append(observe(breaker, out, list(signals)))
    return {"id": scenario["id"], "trace": trace}


def main() -> None:
    out = sys.stdout
    out.write(json.dumps({"fluxgate": version("fluxgate"), "python": sys.version.split()[0]}))
    out.write("\n")
    out.flush()
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        if not line.strip():
            continue
        scenario = json.loads(line)
        try:
            result = run(scenario)
        except HarnessError as e:
            result = {"id": scenario.get("id"), "harness_error": str(e)}
        out.write(json.dumps(result))
        out.write("\n")
        out.flush()


if __name__ == "__main__":
    assert fluxgate.CircuitBreaker is CircuitBreaker
    main()
