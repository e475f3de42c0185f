"""How long a message that failed for a passing reason (S3 or SQS trouble) waits."""

from ec2_worker.outcome import retry_delay


def test_the_back_off_starts_short_and_doubles_up_to_five_minutes():
    assert [retry_delay(count) for count in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]


def test_a_message_without_a_receive_count_waits_the_shortest_time():
    assert retry_delay(0) == 5
