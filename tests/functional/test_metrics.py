"""Worker metrics through the emulator's CloudWatch: published in few requests, read back
as the per-worker throughput the scaler uses."""

from skyclass.runtime.metrics import MetricsPublisher, read_activity, read_throughput
from tests.support.clocks import FakeClock


def test_published_batches_read_back_as_images_per_busy_second(aws):
    clock = FakeClock(now=0.0)
    first = MetricsPublisher(aws.cloudwatch, "local", flush_every=10, clock=clock)
    second = MetricsPublisher(aws.cloudwatch, "local", flush_every=10, clock=clock)
    # GIVEN two workers that each classified 64 images in 4 busy seconds, back to back
    for publisher in (first, second):
        publisher.record_batch(images=32, errors=0, seconds=2.0)
        clock.now += 2.0
        publisher.record_batch(images=32, errors=1, seconds=2.0)
    # THEN each sent its first batch at once (it came after a quiet spell), and the
    # rest only after the flush period
    assert read_throughput(aws.cloudwatch, "local").images == 64
    clock.now = 11.0
    first.record_batch(images=0, errors=0, seconds=0.0)
    second.flush()
    throughput = read_throughput(aws.cloudwatch, "local")
    assert (throughput.images, throughput.busy_seconds) == (128, 8.0)
    assert throughput.per_worker == 16.0


def test_a_workers_first_batches_do_not_count_towards_its_warm_throughput(aws):
    clock = FakeClock()
    publisher = MetricsPublisher(aws.cloudwatch, "local", flush_every=0, clock=clock)
    # GIVEN a worker whose first two batches ran slowly (cold), and the next ones fast
    for images, seconds in ((1, 5.0), (4, 4.0), (32, 2.0), (32, 2.0)):
        clock.now += seconds
        publisher.record_batch(images=images, errors=0, seconds=seconds)
    # THEN the scaler reads the warm figure, and every image as finished
    activity = read_activity(aws.cloudwatch, "local", grace=20)
    assert activity.warm.per_worker == 16.0
    assert activity.finished == 69 and activity.finished_in_grace == 69


def test_a_trickle_is_reported_image_by_image(aws):
    clock = FakeClock()
    publisher = MetricsPublisher(aws.cloudwatch, "local", flush_every=10, clock=clock)
    # GIVEN a worker that gets one image every 9 s, each done in a fraction of a second
    for n in range(3):
        clock.now = 9.0 * n
        publisher.record_batch(images=1, errors=0, seconds=0.2)
        # THEN each one is sent at once, although the flush period has not passed
        assert read_activity(aws.cloudwatch, "local", grace=20).finished_in_grace == n + 1


def test_other_stages_and_an_idle_fleet_give_no_throughput(aws):
    MetricsPublisher(aws.cloudwatch, "dev", flush_every=0).record_batch(10, 0, 1.0)
    assert read_throughput(aws.cloudwatch, "local").per_worker is None
    assert read_activity(aws.cloudwatch, "local", grace=20).finished_in_grace == 0
