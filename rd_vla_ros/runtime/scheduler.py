"""ReplanScheduler: when the node runs the policy next. Pure logic on an injected clock (no ROS).

Every time is in nanoseconds of ONE clock, the node's (ROS time: wall time, or /clock under
use_sim_time), inference latency included, so re-planning lands right whatever the real-time factor.

    wait = s.before_assembly(now)     # ns to sleep before assembling an observation; None = assemble now
    s.blocked()                       # the inputs are stale or missing: nothing to run on
    s.accept(obs.stamp_ns)            # False: the same observation as last time, wait for a new input
    s.input_arrived(now)              # an input callback: True = wake the inference thread
    s.planned(chunk stamp, H_exec, started, finished)   # a chunk was published: the next re-plan is due
    s.sleep_after(now)                # how long the thread may sleep after publishing

A chunk stamped t (its observation's instant) with execution horizon H covers t + period .. t + H
period; the next inference should finish when those rows run out, so it is due at
t + H * period - latency. A re-plan that starts after its due time is late: `lateness_ns` keeps how
late (p50/p99 on /diagnostics). `overloaded` says the next one will be too: the chunk was published
after the next re-plan was already due, which happens when observation age + 2 x latency exceeds
H_exec periods; `overloaded_streak` counts such chunks in a row (one at start-up is not a trend).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class ReplanScheduler:
    """Args: period_ns: the control period (the longest sleep); settle_ns: after waiting for a new
    input, how long to let the rest of that sensor instant arrive before assembling (inputs.settle_s)."""

    period_ns: int
    settle_ns: int = 0
    history: int = 500
    next_due_ns: int = 0
    last_obs_stamp_ns: int = -1  # newest input stamp of the last observation run
    last_tick_ns: int = 0  # the clock at the previous before_assembly
    want_input: bool = False  # waiting for an input newer than the last observation's
    first_new_input_ns: int = 0  # when the first such input arrived (0: none yet)
    replans: int = 0
    late_replans: int = 0  # started more than one period after their due time
    overloaded: bool = False  # the last chunk was published after the next re-plan was due
    overloaded_streak: int = 0  # consecutive chunks that were
    lateness_ns: deque[int] = field(default_factory=deque)
    clock_jumps: int = 0

    def __post_init__(self) -> None:
        if self.period_ns <= 0:
            raise ValueError(f"ReplanScheduler.period_ns must be > 0, got {self.period_ns}")
        if self.settle_ns < 0:
            raise ValueError(f"ReplanScheduler.settle_ns must be >= 0, got {self.settle_ns}")
        self.lateness_ns = deque(maxlen=self.history)

    def reset(self) -> None:
        """Forget the schedule (activation, or the clock went backwards): the next observation runs at once."""
        self.next_due_ns, self.last_obs_stamp_ns, self.first_new_input_ns = 0, -1, 0
        self.want_input = False
        self.overloaded = False

    def before_assembly(self, now_ns: int) -> int | None:
        """ns to wait before the next step (at most one period), or None: assemble an observation now."""
        if now_ns < self.last_tick_ns:  # the clock went backwards (simulation or bag restarted)
            self.clock_jumps += 1
            self.reset()
        self.last_tick_ns = now_ns
        if now_ns < self.next_due_ns:
            return min(self.next_due_ns - now_ns, self.period_ns)
        settle_end_ns = self.first_new_input_ns + self.settle_ns
        if self.want_input and self.first_new_input_ns and now_ns < settle_end_ns:
            return min(settle_end_ns - now_ns, self.period_ns)
        return None

    def blocked(self) -> None:
        """No observation could be assembled (stale or missing inputs)."""
        self.want_input = False

    def accept(self, obs_stamp_ns: int) -> bool:
        """True: run the policy on this observation. False: it is the one last run on (re-planning on it
        would repeat the chunk); the input callbacks wake the thread when a newer input arrives."""
        if obs_stamp_ns == self.last_obs_stamp_ns:
            self.first_new_input_ns = 0  # an input that was not newer does not open the settle window
            self.want_input = True
            return False
        self.want_input = False
        self.last_obs_stamp_ns = obs_stamp_ns
        return True

    def input_arrived(self, now_ns: int) -> bool:
        """An input callback accepted a message: True when the inference thread waits for it."""
        if not self.want_input:
            return False
        if not self.first_new_input_ns:
            self.first_new_input_ns = now_ns
        return True

    def planned(self, stamp_ns: int, horizon: int, started_ns: int, finished_ns: int) -> None:
        """A chunk (observation stamp, execution horizon H) was computed from started_ns to finished_ns
        and published: the next re-plan is due when its rows run out, less the inference latency."""
        if self.next_due_ns:  # how late this re-plan started against its due time
            lateness = max(0, started_ns - self.next_due_ns)
            self.lateness_ns.append(lateness)
            self.late_replans += lateness > self.period_ns
        self.replans += 1
        latency_ns = max(0, finished_ns - started_ns)
        # an observation stamped after the chunk was ready (a sensor clock ahead of ours) must not push
        # the next re-plan into the future: its rows are counted from when the chunk existed
        self.next_due_ns = min(stamp_ns, finished_ns) + horizon * self.period_ns - latency_ns
        self.overloaded = finished_ns > self.next_due_ns
        self.overloaded_streak = self.overloaded_streak + 1 if self.overloaded else 0

    def sleep_after(self, now_ns: int) -> int:
        """ns the thread may sleep after publishing a chunk (until the next re-plan, at most one period)."""
        return max(0, min(self.next_due_ns - now_ns, self.period_ns))

    def lateness_ms(self, q: float) -> float:
        """Percentile q of how late re-plans started (ms; NaN before the second chunk)."""
        if not self.lateness_ns:
            return float("nan")
        ordered = sorted(self.lateness_ns)
        index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
        return ordered[index] / 1e6
