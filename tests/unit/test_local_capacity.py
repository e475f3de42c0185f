"""The local fleet sized to the machine: how many workers, how many threads each, and
the note that says why."""

from __future__ import annotations

from skyclass.operations.local.capacity import GIB, local_capacity


def test_a_two_core_machine_gets_one_worker_with_both_cores():
    capacity = local_capacity(cores=2, memory=24 * GIB, chosen=None, default=4)

    assert (capacity.max_workers, capacity.threads_per_worker) == (1, 2)
    assert "at most 1 worker, sized to this machine (2 cores and 24 GiB here" in capacity.note
    assert "capped from 4" in capacity.note
    assert capacity.note.endswith("2 inference threads per worker")


def test_a_bigger_machine_gets_more_workers_up_to_the_default():
    assert local_capacity(cores=8, memory=64 * GIB, chosen=None, default=4).max_workers == 4
    capacity = local_capacity(cores=16, memory=64 * GIB, chosen=None, default=4)
    assert (capacity.max_workers, capacity.threads_per_worker) == (4, 4)
    assert "capped" not in capacity.note


def test_memory_limits_the_fleet_too():
    capacity = local_capacity(cores=16, memory=8 * GIB, chosen=None, default=8)

    assert capacity.max_workers == 3  # (8 - 2) GiB at 2 GiB a worker


def test_a_fleet_the_operator_chose_is_kept_and_shares_the_cores():
    # GIVEN an operator who asks for three workers on two cores (to watch elasticity)
    capacity = local_capacity(cores=2, memory=24 * GIB, chosen=3, default=4)

    # THEN three it is, each with one inference thread, and the note says they share
    assert (capacity.max_workers, capacity.threads_per_worker) == (3, 1)
    assert "3 workers as chosen (1 fit 2 cores and 24 GiB here: they share its cores)" in (
        capacity.note)


def test_each_worker_gets_its_share_of_threads_unless_the_environment_sets_them():
    capacity = local_capacity(cores=4, memory=24 * GIB, chosen=2, default=4)

    env = capacity.worker_env({"OMP_NUM_THREADS": "1"})

    assert env == {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "2",
                   "OMP_NUM_THREADS": "1"}
