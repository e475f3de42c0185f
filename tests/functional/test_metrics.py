"""Worker metrics through the emulator's CloudWatch: published in few requests, read back
as the per-worker throughput the scaler uses."""

from skyclass.runtime.metrics import MetricsPublisher, read_throughput
from tests.support.clocks import FakeClock


def test_published_batches_read_back_as_images_per_busy_second(aws):
    clock = FakeClock(now=0.0)
    first = MetricsPublisher(aws.cloudwatch, "local", flush_every=10, clock=clock)
    second = MetricsPublisher(aws.cloudwatch, "local", flush_every=10, clock=clock)
    # GIVEN two workers that each classified 64 images in 4 busy seconds
    for publisher in (first, second):
        publisher.record_batch(images=32, errors=0, seconds=2.0)
        publisher.record_batch(images=32, errors=1, seconds=2.0)
    # THEN nothing is sent before the flush period, and everything after it
    assert read_throughput(aws.cloudwatch, "local").images == 0
    clock.advance(11.0)
    first.record_batch(images=0, errors=0, seconds=0.0)
    second.flush()
    throughput = read_throughput(aws.cloudwatch, "local")
    assert (throughput.images, throughput.busy_seconds) == (128, 8.0)
    assert throughput.per_worker == 16.0


def test_other_stages_and_an_idle_fleet_give_no_throughput(aws):
    MetricsPublisher(aws.cloudwatch, "dev", flush_every=0).record_batch(10, 0, 1.0)
    assert read_throughput(aws.cloudwatch, "local").per_worker is None
