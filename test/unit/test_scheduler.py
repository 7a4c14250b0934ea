"""ReplanScheduler on a fake clock: due times, waiting for new inputs, the settle window, clock jumps,
observations stamped ahead of the clock, simulated time, and compute that cannot keep up."""

from __future__ import annotations

import pytest

from rd_vla_ros.runtime.scheduler import ReplanScheduler

MS = 1_000_000
PERIOD = 20 * MS


def run_once(s: ReplanScheduler, now: int, stamp: int, horizon: int, latency: int) -> int:
    """Assemble at `now` an observation stamped `stamp`, infer for `latency`; returns the finish time."""
    assert s.before_assembly(now) is None
    assert s.accept(stamp)
    s.planned(stamp, horizon, now, now + latency)
    return now + latency


def test_the_next_replan_is_due_when_the_executed_rows_run_out_less_the_latency() -> None:
    s = ReplanScheduler(PERIOD)
    done = run_once(s, now=1000 * MS, stamp=995 * MS, horizon=5, latency=30 * MS)
    assert s.next_due_ns == 995 * MS + 5 * PERIOD - 30 * MS  # 1065 ms
    assert s.sleep_after(done) == 20 * MS  # at most one period at a time ...
    assert s.before_assembly(1050 * MS) == 15 * MS  # ... then exactly until due, not to the next period tick
    assert s.before_assembly(1064 * MS) == 1 * MS
    assert s.before_assembly(1065 * MS) is None
    assert not s.overloaded and s.replans == 1


def test_an_unchanged_observation_is_not_run_again_and_a_new_input_wakes_the_thread() -> None:
    s = ReplanScheduler(PERIOD)
    run_once(s, now=0, stamp=0, horizon=1, latency=1 * MS)
    assert s.before_assembly(20 * MS) is None
    assert not s.accept(0)  # the same inputs: re-planning would repeat the chunk
    assert s.want_input
    assert s.input_arrived(25 * MS)  # the callback wakes the thread
    assert s.before_assembly(25 * MS) is None  # no settle window configured
    assert s.accept(25 * MS)
    assert not s.input_arrived(26 * MS)  # not waiting any more: no wake-up


def test_the_settle_window_lets_the_rest_of_a_sensor_instant_arrive() -> None:
    s = ReplanScheduler(PERIOD, settle_ns=5 * MS)
    run_once(s, now=0, stamp=0, horizon=1, latency=1 * MS)
    assert not s.accept(0)
    assert s.input_arrived(30 * MS)
    assert s.input_arrived(31 * MS) and s.first_new_input_ns == 30 * MS  # the first one opens the window
    assert s.before_assembly(32 * MS) == 3 * MS
    assert s.before_assembly(35 * MS) is None


def test_a_clock_that_jumps_back_restarts_the_schedule() -> None:
    s = ReplanScheduler(PERIOD)
    run_once(s, now=5000 * MS, stamp=5000 * MS, horizon=8, latency=10 * MS)
    assert s.before_assembly(5010 * MS) == PERIOD  # due at 5150 ms
    assert s.before_assembly(100 * MS) is None  # the bag / simulation restarted: run at once
    assert s.clock_jumps == 1
    assert s.accept(5000 * MS)  # even an observation with the old stamp is new again


def test_an_observation_stamped_ahead_of_the_clock_does_not_stall_replanning() -> None:
    s = ReplanScheduler(PERIOD)
    done = run_once(s, now=1000 * MS, stamp=1800 * MS, horizon=5, latency=20 * MS)  # a sensor clock 0.8 s ahead
    assert s.next_due_ns == done + 5 * PERIOD - 20 * MS  # counted from when the chunk existed, not 1.8 s
    assert s.before_assembly(done + 80 * MS) is None


def test_simulated_time_at_half_speed() -> None:
    """Under use_sim_time every time is simulated, latency included: 40 ms of wall-clock inference at a
    real-time factor of 0.5 is 20 ms of simulated time, and the re-plan is due 20 ms before the rows
    run out, in simulated time."""
    s = ReplanScheduler(PERIOD)
    sim_latency = 20 * MS  # what the node's ROS clock measured
    run_once(s, now=300 * MS, stamp=300 * MS, horizon=4, latency=sim_latency)
    assert s.next_due_ns == 300 * MS + 4 * PERIOD - sim_latency


def test_compute_that_cannot_keep_up_is_flagged_and_counted() -> None:
    s = ReplanScheduler(PERIOD)
    now = 0
    for step in range(6):  # inference takes 70 ms, the horizon covers 2 x 20 ms
        due_before = s.next_due_ns
        if step:
            assert now >= due_before
        now = run_once(s, now=now, stamp=now, horizon=2, latency=70 * MS)
        assert s.overloaded  # published after the next re-plan was due
    assert s.late_replans == 5 and s.replans == 6 and s.overloaded_streak == 6
    # due at start + 40 - 70 ms, started at start + 70 ms (when the previous chunk was done): 100 ms late
    assert s.lateness_ms(50) == pytest.approx(100.0)
    fast = ReplanScheduler(PERIOD)
    now = 0
    for _ in range(4):
        now = run_once(fast, now=now, stamp=now, horizon=8, latency=10 * MS)
        now = fast.next_due_ns
    assert not fast.overloaded and fast.late_replans == 0 and fast.lateness_ms(99) == 0.0


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="period_ns must be > 0"):
        ReplanScheduler(0)
    with pytest.raises(ValueError, match="settle_ns must be >= 0"):
        ReplanScheduler(PERIOD, settle_ns=-1)
