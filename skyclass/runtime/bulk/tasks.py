"""Tasks between the parts of a bulk job: ``list`` (the lister lists more of a source
job's prefix) and ``finish`` (the finisher exports, emits the event and calls back).

Each kind has its own SQS queue, the event source of its Lambda; a task is small JSON,
``{"v": 1, "task", "job_id", "attempt"}``. Both are safe to deliver twice: the lister
moves a job's cursor only with a conditional write, and the finisher skips what a job
records as done. Queue URLs are looked up by name once, on first use.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from skyclass.runtime.contracts import is_job_id
from skyclass.runtime.errors import InvalidMessageError
from skyclass.runtime.names import finish_queue_name, list_queue_name, queue_url_beside

LIST = "list"
FINISH = "finish"
_QUEUE_NAMES = {LIST: list_queue_name, FINISH: finish_queue_name}
MAX_DELAY_S = 900  # SQS's longest message timer


@dataclass(frozen=True)
class Task:
    task: str
    job_id: str
    attempt: int = 0
    v: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str) -> Task:
        try:
            data = json.loads(body)
            task = cls(task=data["task"], job_id=data["job_id"],
                       attempt=int(data.get("attempt", 0)))
        except (TypeError, ValueError, KeyError) as exc:
            raise InvalidMessageError(f"not a task: {body[:200]!r}") from exc
        if task.task not in _QUEUE_NAMES or not is_job_id(task.job_id):
            raise InvalidMessageError(f"not a task: {body[:200]!r}")
        return task


class TaskQueues:
    def __init__(self, sqs: Any, stage: str, work_queue_url: str) -> None:
        self._sqs = sqs
        self._urls = {kind: queue_url_beside(work_queue_url, name(stage))
                      for kind, name in _QUEUE_NAMES.items()}

    def url(self, kind: str) -> str:
        return self._urls[kind]

    def send(self, task: Task, delay: int = 0) -> None:
        self._sqs.send_message(QueueUrl=self.url(task.task), MessageBody=task.to_json(),
                               DelaySeconds=max(0, min(int(delay), MAX_DELAY_S)))

    def list(self, job_id: str) -> None:
        self.send(Task(LIST, job_id))

    def finish(self, job_id: str) -> None:
        self.send(Task(FINISH, job_id))
