"""Playing the AMI builder instance, which the emulator cannot boot: once the bake driver
has launched it and waits, the "builder" writes its status report. It sleeps on a
``FakeClock``, so the minutes a bake takes on AWS pass at once."""

from __future__ import annotations

from typing import Any

from ami_build.bake import status_document
from skyclass.operations.waiting import Waiter
from tests.support.clocks import FakeClock


class Builder:
    """Plays the builder instance: once the driver has launched it and waits, it writes
    the status report. Its ``sleep`` is the driver's, and moves ``clock`` on."""

    def __init__(self, aws: Any, bucket: str, status: str, clock: FakeClock | None = None
                 ) -> None:
        self._aws, self._bucket, self._status = aws, bucket, status
        self.clock = clock or FakeClock()

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)
        assert instances_of_role(self._aws, "ami-builder"), \
            "the driver waits before it has a builder"
        sources = [k["Key"] for k in self._aws.s3.list_objects_v2(
            Bucket=self._bucket, Prefix="bake/").get("Contents", [])
            if k["Key"].endswith("source.tar.gz")]
        for key in sources:
            self._aws.s3.put_object(Bucket=self._bucket,
                                    Key=key.replace("source.tar.gz", "status.json"),
                                    Body=status_document(self._status, 95, "provision.sh: ..."))

    def waiter(self, said: list[str], sleep: Any = None) -> Waiter:
        """A Waiter on the builder's clock that plays the builder when it sleeps."""
        return Waiter(said.append, clock=self.clock, sleep=sleep or self.sleep)


def instances_of_role(aws: Any, role: str) -> list[dict]:
    return [i for r in aws.ec2.describe_instances(
        Filters=[{"Name": "tag:skyclass:role", "Values": [role]}])["Reservations"]
        for i in r["Instances"]]
