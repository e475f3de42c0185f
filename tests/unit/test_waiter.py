"""The per-process result waiter: every waiting /classify request gets its result, and
waiting costs the store a bounded number of polls, however many requests wait.

The store is an in-memory fake; "workers" are threads that put results into it.
"""

from __future__ import annotations

import threading
import time

from skyclass.runtime.waiter import MAX_INTERVAL_S, ResultWaiter


class FakeStore:
    """A JsonStore's ``get``: answers what was put, and counts every read."""

    def __init__(self) -> None:
        self.documents: dict[str, dict] = {}
        self.gets = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> dict | None:
        with self._lock:
            self.gets += 1
            return self.documents.get(key)

    def put(self, key: str, document: dict) -> None:
        with self._lock:
            self.documents[key] = document


def wait_all(waiter: ResultWaiter, keys: list[str], timeout: float) -> dict[str, dict | None]:
    answers: dict[str, dict | None] = {}

    def one(key: str) -> None:
        answers[key] = waiter.wait(key, timeout)

    threads = [threading.Thread(target=one, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_a_result_that_is_already_there_is_answered_at_once():
    store = FakeStore()
    store.put("results/a.json", {"status": "done"})

    assert ResultWaiter(store).wait("results/a.json", timeout=5) == {"status": "done"}
    assert store.gets == 1


def test_one_request_polls_a_bounded_number_of_times_and_gives_up_in_time():
    # GIVEN a result that never comes
    store = FakeStore()
    waiter = ResultWaiter(store)

    # WHEN a request waits three seconds for it
    started = time.monotonic()
    answer = waiter.wait("results/never.json", timeout=3.0)

    # THEN it gets None after its timeout, having polled a few times, backing off
    assert answer is None
    assert time.monotonic() - started >= 3.0
    assert 3 <= store.gets <= 3 / MAX_INTERVAL_S + 5


def test_many_waiting_requests_share_one_bounded_budget_of_polls():
    # GIVEN 120 requests waiting at once, and workers answering them in order, 60 a second
    store = FakeStore()
    waiter = ResultWaiter(store, polls_per_s=10)
    keys = [f"results/job{n:03d}/img.json" for n in range(120)]

    def workers() -> None:
        for key in keys:
            time.sleep(1 / 60)
            store.put(key, {"key": key})

    started = time.monotonic()
    threading.Thread(target=workers, daemon=True).start()
    answers = wait_all(waiter, keys, timeout=30)
    elapsed = time.monotonic() - started

    # THEN every request got its own result
    assert all(answers[key] == {"key": key} for key in keys)
    # AND the polls that found nothing stayed within the budget, however many waited:
    # about one GET per image, plus ten a second
    misses = store.gets - len(keys)
    assert misses <= 10 * elapsed + 10


def test_the_poller_ends_when_nobody_waits_and_starts_again_for_the_next_request():
    store = FakeStore()
    waiter = ResultWaiter(store)
    assert waiter.wait("results/gone.json", timeout=0.3) is None

    store.put("results/later.json", {"status": "done"})

    assert waiter.wait("results/later.json", timeout=5) == {"status": "done"}


def test_a_store_that_fails_is_a_miss_not_a_dead_waiter():
    class Flaky(FakeStore):
        def get(self, key: str) -> dict | None:
            if self.gets < 2:
                self.gets += 1
                raise ConnectionError("S3 hiccup")
            return super().get(key)

    store = Flaky()
    store.put("results/a.json", {"status": "done"})

    assert ResultWaiter(store).wait("results/a.json", timeout=10) == {"status": "done"}


def test_requests_that_give_up_while_the_budget_is_spent_leave_a_working_waiter():
    # GIVEN a waiter with a tiny budget, spent on requests that then give up
    store = FakeStore()
    waiter = ResultWaiter(store, polls_per_s=1)
    wait_all(waiter, [f"results/never-{n}.json" for n in range(5)], timeout=0.5)
    time.sleep(1.5)  # ... while the waiter waits for its budget
    # WHEN a later request waits for a result that is there
    store.put("results/there.json", {"status": "done"})

    # THEN it gets it
    assert waiter.wait("results/there.json", timeout=5) == {"status": "done"}
