"""InstancePool: the stage's pre-baked worker instances in EC2, found by their tags.

The pool is created stopped by provisioning (an operations step, skyclass.operations);
scaling only starts and stops its members, so a new worker costs a boot, not a launch from scratch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from skyclass.runtime.fleet.policy import InstanceView
from skyclass.runtime.names import pool_filters


class InstancePool:
    def __init__(self, ec2: Any, stage: str) -> None:
        self._ec2 = ec2
        self.stage = stage

    def instances(self) -> list[InstanceView]:
        paginator = self._ec2.get_paginator("describe_instances")
        views = []
        for page in paginator.paginate(Filters=pool_filters(self.stage)):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    launched = instance.get("LaunchTime")
                    views.append(
                        InstanceView(
                            id=instance["InstanceId"],
                            state=instance["State"]["Name"],
                            started_at=launched.timestamp() if launched else None,
                        )
                    )
        return sorted(views, key=lambda v: v.id)

    def start(self, ids: Sequence[str]) -> None:
        if ids:
            self._ec2.start_instances(InstanceIds=list(ids))

    def stop(self, ids: Sequence[str]) -> None:
        if ids:
            self._ec2.stop_instances(InstanceIds=list(ids))
