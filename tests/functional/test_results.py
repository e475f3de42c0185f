"""ResultStore.read_prefix: a polled job costs a GET only for new or changed results."""

from skyclass.results import ResultStore


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
    store = ResultStore(s3, bucket)
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
    store = ResultStore(aws.s3, stage.resources.output_bucket, cache_size=2)
    for i in range(5):
        store.put(f"results/job/{i}.json", {"i": i})
    assert [r["i"] for r in store.read_prefix("results/job/")] == [0, 1, 2, 3, 4]
