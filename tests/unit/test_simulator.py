"""The fleet simulator on small traces: GIVEN arrivals and a policy, THEN these results,
costs and fleet sizes. Deterministic, no I/O."""

from __future__ import annotations

import pytest

from bench.fleet_sim import Cloud, FixedFleet, OurPolicy, StudentPolicy, percentile, simulate
from bench.simulate import Row, burst, burst_during_boot, our_settings, poisson, trickle, verdict

CLOUD = Cloud(boot_time=20.0, pending_time=5.0, per_worker=10.0, batch_size=5, period=30.0,
              pool_size=6)


def ours(**changes) -> OurPolicy:
    settings = our_settings(CLOUD).replace(target_latency=30.0, idle_grace=60.0, **changes)
    return OurPolicy(settings, CLOUD.per_worker)


def test_every_image_gets_exactly_one_result():
    arrivals = burst(images=200, at=3.0, over=2.0)

    for policy in (ours(), StudentPolicy(), FixedFleet(2)):
        run = simulate(arrivals, policy, CLOUD)
        assert len(run.latencies) == 200, policy.name
        assert min(run.latencies) > 0


def test_a_cold_fleet_starts_its_first_worker_when_the_first_image_arrives():
    # GIVEN an idle fleet and one image at t=7, long before the tick at t=30
    run = simulate([7.2], ours(), CLOUD, phase=0.0)

    # THEN a worker was up from the arrival (the S3 event's cold start) ...
    assert run.up[7] == 1 and run.up[6] == 0
    # ... and the image waited for one boot, not for the tick
    assert run.latencies == [pytest.approx(20.8)]


def test_the_student_waits_for_the_cron_minute():
    run = simulate([7.2], StudentPolicy(), CLOUD, phase=0.0)

    assert run.up[29] == 0 and run.up[30] == 1
    assert run.latencies[0] > 30 + CLOUD.boot_time - 7.2


def test_a_burst_grows_our_fleet_past_one_and_back_to_zero():
    # GIVEN 600 images at once: a minute of work for one worker, with a 30 s target
    run = simulate(burst(images=600, at=1.0, over=1.0), ours(), CLOUD)

    assert run.peak > 1
    assert run.up[-1] == 0


def test_the_student_takes_seventeen_for_a_burst_above_fifteen():
    cloud = Cloud(pool_size=20)

    run = simulate(burst(images=40, at=1.0, over=1.0), StudentPolicy(), cloud)

    assert run.peak == 17


def test_every_start_is_billed_at_least_a_minute():
    # GIVEN one image that one worker finishes within seconds of its boot
    run = simulate([1.0], StudentPolicy(), CLOUD, phase=0.0)

    # THEN the single start costs exactly EC2's minimum
    assert run.instance_seconds == CLOUD.min_billed


def test_a_fixed_fleet_is_up_from_the_start_and_never_changes():
    run = simulate(burst(images=50, at=0.0, over=1.0), FixedFleet(2), CLOUD)

    assert set(run.up) == {2}
    assert max(run.latencies) < 5


def test_runs_are_deterministic():
    arrivals = poisson(lambda t: 4.0, 300, seed=7)

    first = simulate(arrivals, ours(), CLOUD, phase=10.0)
    second = simulate(poisson(lambda t: 4.0, 300, seed=7), ours(), CLOUD, phase=10.0)

    assert first.latencies == second.latencies
    assert first.instance_seconds == second.instance_seconds


def test_on_a_steady_stream_the_student_flaps_and_ours_holds():
    # GIVEN a stream one worker keeps up with
    arrivals = poisson(lambda t: 3.0, 600, seed=3)

    mine = simulate(arrivals, ours(), CLOUD)
    student = simulate(arrivals, StudentPolicy(), CLOUD)

    # THEN ours runs one worker throughout and costs less; the student's fleet jumps
    changes = sum(a != b for a, b in zip(student.up, student.up[1:], strict=False))
    assert mine.peak == 1
    assert changes > 4
    assert mine.instance_seconds < student.instance_seconds


def test_percentile_is_the_nearest_rank():
    assert percentile([5, 1, 3, 2, 4], 50) == 3
    assert percentile(list(range(1, 101)), 95) == 95


def test_the_verdict_needs_lower_cost_and_no_worse_p95():
    student = Row("t", "student", 1, 10, 100.0, 17, 17)

    ok, line = verdict([Row("t", "skyclass", 1, 10, 40.0, 3, 1), student])
    worse, _ = verdict([Row("t", "skyclass", 1, 11, 40.0, 3, 1), student])

    assert ok and "60% fewer instance-minutes" in line
    assert not worse


def test_a_trickle_pays_one_cold_start_where_the_student_pays_one_per_image():
    # GIVEN one image every 30 s for ten minutes, each done in a fraction of a second
    arrivals = trickle(every=30.0, seconds=600.0)

    mine = simulate(arrivals, ours(), CLOUD)
    student = simulate(arrivals, StudentPolicy(), CLOUD)

    # THEN ours starts one worker and keeps it; the student starts one again and again
    assert mine.starts == 1 and max(mine.latencies) <= 1 + CLOUD.boot_time
    assert student.starts >= 10


def test_a_burst_during_boot_never_stops_a_worker_it_needs_nor_restarts_one():
    # GIVEN a few images that cold-start a worker, then 600 more while it boots
    arrivals = burst_during_boot(first=3, then=600, gap=10.0)

    for phase in (0.0, 10.0, 20.0):
        run = simulate(arrivals, ours(), CLOUD, phase=phase)
        # THEN no instance stops while an image waits or is in flight
        assert all(held == 0 for _, kind, _, held in run.events if kind == "stop")
        # AND no instance starts more than once: starts are at most the peak
        started = [i for _, kind, i, _ in run.events if kind == "start"]
        assert len(started) == len(set(started)) <= run.peak
        assert len(run.latencies) == len(arrivals)


def test_instance_starts_are_counted():
    run = simulate(burst(images=600, at=1.0, over=1.0), ours(), CLOUD)

    assert run.starts == sum(1 for _, kind, _, _ in run.events if kind == "start") >= 2
