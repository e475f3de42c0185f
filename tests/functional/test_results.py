"""JsonStore: a polled job costs a GET only for new or changed results; waiting for the
results of uploads lists before it fetches and never takes an earlier upload's result."""

from skyclass.runtime.store import JsonStore
from tests.support.clocks import FakeClock


class CountingS3:
    """The emulator's S3 client, counting GetObject calls."""

    def __init__(self, s3):
        self._s3 = s3
        self.gets = 0

    def get_object(self, **kwargs):
        self.gets += 1
        return self._s3.get_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self._s3, name)


def test_polling_reads_only_what_is_new_or_changed(aws, stage):
    bucket = stage.resources.output_bucket
    s3 = CountingS3(aws.s3)
    store = JsonStore(s3, bucket)
    for i in range(3):
        store.put(f"results/job/{i}.json", {"i": i, "status": "done"})
    # WHEN a job is read twice with nothing new, then after one new and one rewritten result
    assert [r["i"] for r in store.read_prefix("results/job/")] == [0, 1, 2]
    assert [r["i"] for r in store.read_prefix("results/job/")] == [0, 1, 2]
    assert s3.gets == 3
    store.put("results/job/3.json", {"i": 3, "status": "done"})
    store.put("results/job/0.json", {"i": 0, "status": "failed"})
    results = store.read_prefix("results/job/")
    # THEN the second read cost no GET, the third only two, and it sees the rewrite
    assert s3.gets == 5
    assert [(r["i"], r["status"]) for r in results] == [
        (0, "failed"), (1, "done"), (2, "done"), (3, "done")]


def test_a_small_cache_still_returns_every_result(aws, stage):
    store = JsonStore(aws.s3, stage.resources.output_bucket, cache_size=2)
    for i in range(5):
        store.put(f"results/job/{i}.json", {"i": i})
    assert [r["i"] for r in store.read_prefix("results/job/")] == [0, 1, 2, 3, 4]


class Worker(FakeClock):
    """Stands in for the fleet while ``wait_for`` sleeps on this clock: each sleep writes
    the next result of ``script`` (a list of (key, document))."""

    def __init__(self, store, script):
        super().__init__(now=0.0)
        self.store, self.script = store, list(script)

    def clock(self):
        return self()

    def sleep(self, seconds):
        super().sleep(seconds)
        if self.script:
            self.store.put(*self.script.pop(0))


def test_waiting_takes_new_results_only_and_gets_only_what_the_listing_shows(aws, stage):
    # GIVEN an earlier answer for a.jpg, and three images uploaded again
    s3 = CountingS3(aws.s3)
    store = JsonStore(s3, stage.resources.output_bucket)
    keys = [f"results/incoming/drop/{name}.json" for name in ("a.jpg", "b.jpg", "c.jpg",
                                                                  "d.jpg")]
    store.put(keys[0], {"name": "a.jpg", "status": "failed", "error": "the old answer"})
    earlier = store.etags(keys)
    assert list(earlier) == [keys[0]]
    # WHEN the workers answer b, then a (anew), and c and d not in time
    worker = Worker(store, [(keys[1], {"name": "b.jpg", "status": "done"}),
                            (keys[0], {"name": "a.jpg", "status": "done"})])
    results, waiting = store.wait_for(keys, timeout=10, poll=1, earlier=earlier,
                                      clock=worker.clock, sleep=worker.sleep)
    # THEN both new answers came back, not the old one; c and d are still awaited
    assert [(r["name"], r["status"]) for r in results] == [("a.jpg", "done"), ("b.jpg", "done")]
    assert waiting == {keys[2], keys[3]}
    # AND each result was fetched once, when listed as new: 11 polls cost 2 GETs, not 40
    assert s3.gets == 2


def test_waiting_for_one_image_gets_it_instead_of_listing_its_folder(aws, stage):
    s3 = CountingS3(aws.s3)
    store = JsonStore(s3, stage.resources.output_bucket)
    for i in range(3):
        store.put(f"results/incoming/{i}.json", {"i": i})
    worker = Worker(store, [("results/incoming/new.json", {"i": "new"})])
    results, waiting = store.wait_for(["results/incoming/new.json"], timeout=5, poll=1,
                                      clock=worker.clock, sleep=worker.sleep)
    assert results == [{"i": "new"}] and not waiting and s3.gets == 2
