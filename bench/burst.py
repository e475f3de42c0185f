"""A crowd of synchronous requests: N clients each POST one image to ``/classify`` at once.

    python -m bench.burst [--requests 100] [--rounds 3] [--model resnet50|tiny]
    python -m bench.burst --trickle 300 [--every 10]

Burst: ``skyclass up`` (the fleet sized to this machine, as a new user gets it) starts
idle; round 1 meets the idle fleet, the next rounds follow at once and meet it warm.
Each client sends one small JPEG as multipart field ``myfile`` and waits for its answer;
a 202 is followed at its ``status_url`` until the image is ``done``. Per round it
prints the answers by status, latency p50/p95/max (to the 200, or to ``done`` at the
status URL) and wall time, worker starts and stops and the peak worker count, the
scaling decisions that stopped a worker and the backlog they saw, and the emulator's
requests per image. The plain ``tf.function`` of the same model is timed in this
process with the stack up and idle, before the first round and after the last: N over
its rate is the compute floor a round is held to (warm: wall <= 1.5 x floor + 3 s).

Trickle: one request every ``--every`` seconds for ``--trickle`` seconds, from an idle
fleet: how many times a worker started (each start a cold start).

The model is ResNet-50 with ``weights=None`` saved as a ``.keras`` file with a 1000-line
labels file (TIMING-ONLY, as bench.stack_drain: the ImageNet weights are not on this
machine, and speed does not depend on the weight values; its labels mean nothing), or
the tests' tiny CNN. The machine is shared and timings are noisy: the figures are
printed, never judged; the exit status is non-zero only if an image got no result.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import requests  # noqa: E402

from bench.support import (  # noqa: E402
    TINY_MODEL_CACHE,
    BenchStack,
    StackLog,
    cpu_flags,
    model_env,
    plain_function,
    running_stack,
    timing_model,
    worker_timeline,
)
from testbed.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes, train_tiny_model  # noqa: E402,I001

REQUEST_TIMEOUT = 60.0
RESULT_TIMEOUT = 600.0  # after a 202, how long a client follows its status_url
STATUS_POLL_S = 2.0  # after a 202 without Retry-After
BACKGROUND_S = 5.0  # how long the idle stack's own emulator traffic is measured


@dataclass
class Answer:
    """One client's request: the first answer's status, when it came, and when the
    image's result was known (the 200 itself, or ``done``/``failed`` at its status URL)."""

    sent: float
    status: int = 0
    answered: float = 0.0
    final: str = "lost"
    finished: float = 0.0
    error: str = ""


@dataclass
class Round:
    name: str
    answers: list[Answer]
    started: float
    ended: float
    requests: dict[str, int] = field(default_factory=dict)  # the emulator's, all round
    during_posts: dict[str, int] = field(default_factory=dict)  # ... until every POST's answer

    @property
    def wall(self) -> float:
        return max(a.finished or a.answered for a in self.answers) - self.started

    def latencies(self) -> list[float]:
        return [a.finished - a.sent for a in self.answers if a.final in ("done", "failed")]


def classify(api: str, data: bytes, name: str,
             answered: Callable[[], None] = lambda: None) -> Answer:
    """POST the image; after a 202 follow its status URL. ``answered`` is called once
    the POST has its answer."""
    answer = Answer(sent=time.monotonic())
    try:
        try:
            response = requests.post(f"{api}/classify", timeout=REQUEST_TIMEOUT,
                                     files={"myfile": (name, data, "image/jpeg")})
        finally:
            answered()
        answer.status, answer.answered = response.status_code, time.monotonic()
        if response.status_code == 200:
            answer.final, answer.finished = response.json()["status"], answer.answered
        elif response.status_code == 202:
            retry = float(response.headers.get("Retry-After") or STATUS_POLL_S)
            follow(urljoin(f"{api}/classify", response.json()["status_url"]), answer, retry)
        else:
            answer.final, answer.error = f"HTTP {response.status_code}", response.text[:200]
    except requests.RequestException as exc:
        answer.final, answer.error = "error", str(exc)
    return answer


def follow(status_url: str, answer: Answer, every: float) -> None:
    """Ask the status URL every ``every`` seconds (the 202's Retry-After) until done."""
    deadline = time.monotonic() + RESULT_TIMEOUT
    while time.monotonic() < deadline:
        time.sleep(every)
        response = requests.get(status_url, timeout=REQUEST_TIMEOUT)
        if response.status_code == 200:
            answer.final, answer.finished = response.json()["status"], time.monotonic()
            return


def images(count: int, first: int = 0) -> list[bytes]:
    return [image_bytes(CLASSES[i % len(CLASSES)], HELD_OUT_SEED + 60_000 + first + i,
                        size=(320, 240)) for i in range(count)]


def run_round(stack: BenchStack, name: str, data: list[bytes]) -> Round:
    before = stack.emulator_requests()
    posts: dict[str, int] = {}
    pending = [len(data)]
    lock = threading.Lock()

    def answered() -> None:
        with lock:
            pending[0] -= 1
            if pending[0] == 0:  # the sync path is over; what follows is 202s' polling
                posts.update(stack.emulator_requests())

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(data)) as pool:
        answers = list(pool.map(lambda item: classify(stack.stack.api, item[1],
                                                      f"burst-{item[0]:03d}.jpg", answered),
                                enumerate(data)))
    after = stack.emulator_requests()
    return Round(name, answers, started, time.monotonic(),
                 {k: after.get(k, 0) - before.get(k, 0) for k in after},
                 {k: posts.get(k, 0) - before.get(k, 0) for k in posts})


def plain_rate(model_path: Path, images_: int = 256, batch: int = 32) -> float:
    """Images per second of the model in a plain ``tf.function``, batches of 32."""
    import keras

    model = keras.models.load_model(model_path, compile=False)
    height, width = model.input_shape[1:3]
    run = plain_function(model, lambda pixels: pixels)
    pixels = np.random.default_rng(0).uniform(0, 255, (batch, height, width, 3)).astype(
        np.float32)
    run(pixels)
    calls = max(2, images_ // batch)
    start = time.perf_counter()
    for _ in range(calls):
        run(pixels)
    return calls * batch / (time.perf_counter() - start)


def report(r: Round, log: StackLog, floor: float, background: float, origin: float,
           warm: bool) -> None:
    statuses = Counter(a.status for a in r.answers)
    finals = Counter(a.final for a in r.answers)
    lat = sorted(r.latencies())
    p = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: float("nan"))
    n = len(r.answers)
    print(f"-- {r.name}: {n} concurrent POST /classify (multipart myfile, 320x240 JPEG)")
    print("answers                " + ", ".join(f"{count} x {status}" for status, count in
                                                sorted(statuses.items()))
          + "; results " + ", ".join(f"{count} {final}" for final, count in finals.items()))
    print(f"latency                p50 {p(0.5):.1f} s, p95 {p(0.95):.1f} s, max "
          f"{lat[-1] if lat else float('nan'):.1f} s; wall {r.wall:.1f} s "
          f"(compute floor {floor:.1f} s: wall = {r.wall / floor:.2f}x floor)")
    first = min((a.finished for a in r.answers if a.final == "done"), default=None)
    events = log.workers(since=r.started - 0.05)
    round_events = [e for e in events if e.at <= r.ended + 0.5]
    starts, stops, _ = worker_timeline(round_events)
    _, _, peak = worker_timeline(log.workers(since=origin))
    ready = [e for e in round_events if e.kind == "ready"]
    print(f"workers                {starts} started, {stops} stopped; peak {peak} at once "
          f"since the stack came up"
          + "".join(f"; {e.instance} ready {e.at - r.started:.1f} s into the round "
                    f"({e.seconds:.1f} s after its start)" for e in ready))
    if first is not None:
        line = f"first result           {first - r.started:.1f} s into the round"
        if ready:
            line += (f", {first - ready[0].at:+.1f} s from the first worker's readiness "
                     "(target: within 3 s)")
        print(line)
    for stop in log.scaling_stops(since=r.started):
        if stop.at <= r.ended + 0.5:
            print(f"scaling stop           {', '.join(stop.instances)} at "
                  f"{stop.at - r.started:.1f} s, backlog {stop.backlog}"
                  + ("  <- WHILE IMAGES WAITED OR WERE IN FLIGHT" if stop.backlog else ""))
    _restarts(round_events, r.started)
    last_post = max(a.answered for a in r.answers)
    own = background * (last_post - r.started)
    sync = r.during_posts
    print(f"emulator requests      {sync.get('total', 0) / n:.1f} per image until every POST "
          "was answered (" + ", ".join(f"{k} {v / n:.1f}" for k, v in sorted(sync.items())
                                       if k != "total")
          + f"; the idle stack's own traffic over that time would be {own / n:.1f} of them); "
          f"{(r.requests.get('total', 0) - sync.get('total', 0)) / n:.1f} more per image "
          "after, following 202s at their status URL")
    if warm:
        limit = 1.5 * floor + 3
        met = statuses.get(200, 0) == n and r.wall <= limit
        print(f"warm target            {statuses.get(200, 0)}/{n} answered 200, wall "
              f"{r.wall:.1f} s vs 1.5 x floor + 3 = {limit:.1f} s: "
              f"{'met' if met else 'NOT met'}")


def _restarts(events, origin: float) -> None:
    """Says so if an instance was stopped and started again within a minute."""
    stopped_at: dict[str, float] = {}
    for e in events:
        if e.kind == "stopping":
            stopped_at[e.instance] = e.at
        elif e.kind == "started" and e.instance in stopped_at and (
                e.at - stopped_at[e.instance] < 60):
            print(f"restart                {e.instance} started again "
                  f"{e.at - stopped_at[e.instance]:.1f} s after its stop")


def trickle(stack: BenchStack, log: StackLog, seconds: float, every: float) -> list[Answer]:
    count = int(seconds / every)
    data = images(count, first=5000)
    answers: list[Answer] = []
    threads = []
    started = time.monotonic()
    for i, item in enumerate(data):
        time.sleep(max(0.0, started + i * every - time.monotonic()))
        thread = threading.Thread(target=lambda d=item, k=i: answers.append(
            classify(stack.stack.api, d, f"trickle-{k:03d}.jpg")))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    events = log.workers(since=started)
    starts, stops, peak = worker_timeline(events)
    lat = sorted(a.finished - a.sent for a in answers if a.finished)
    print(f"-- trickle: one POST /classify every {every:g} s for {seconds:g} s ({count} images)")
    print(f"answers                {dict(Counter(a.status for a in answers))}; results "
          f"{dict(Counter(a.final for a in answers))}")
    if lat:
        print(f"latency                p50 {statistics.median(lat):.2f} s, max {lat[-1]:.1f} s "
              "(the first pays the cold start)")
    print(f"cold starts            {starts} worker start(s), {stops} stop(s), peak {peak} "
          "(target: one start in all)")
    for stop in log.scaling_stops(since=started):
        print(f"scaling stop           {', '.join(stop.instances)} at "
              f"{stop.at - started:.1f} s, backlog {stop.backlog}")
    return answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="the first meets an idle fleet")
    parser.add_argument("--model", choices=["resnet50", "tiny"], default="resnet50")
    parser.add_argument("--max-workers", type=int, help="default: sized to this machine")
    parser.add_argument("--trickle", type=float, metavar="SECONDS",
                        help="instead of bursts, one request every --every seconds")
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--logs", type=Path, help="copy the stack's logs here at the end")
    args = parser.parse_args()

    if args.model == "tiny":
        tiny = train_tiny_model(TINY_MODEL_CACHE)
        model_path, labels_path, what = tiny.model_path, tiny.labels_path, "tiny CNN"
    else:
        model_path, labels_path = timing_model()
        what = "ResNet-50 random weights (TIMING-ONLY)"
    print(f"machine                {os.cpu_count()} cores, {cpu_flags()}; load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"model                  {what}")
    env = model_env(model_path, labels_path)
    answers: list[Answer] = []
    with running_stack(env, max_workers=args.max_workers) as stack:
        log = StackLog(stack.stack)
        origin = time.monotonic()
        try:
            if args.trickle:
                answers = trickle(stack, log, args.trickle, args.every)
            else:
                answers = bursts(stack, log, args, model_path, origin)
        finally:
            log.close()
            if args.logs:
                args.logs.mkdir(parents=True, exist_ok=True)
                for path in [stack.stack.console, *stack.stack.log_dir.glob("*.log")]:
                    shutil.copy(path, args.logs / path.name)
    print(f"load average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    lost = [a for a in answers if a.final not in ("done", "failed")]
    for a in lost[:5]:
        print(f"LOST: {a.final} {a.error}")
    return 1 if lost else 0


def bursts(stack: BenchStack, log: StackLog, args: argparse.Namespace, model_path: Path,
           origin: float) -> list[Answer]:
    fleet = stack.stack.get("/fleet").json()
    print(f"fleet                  {(fleet.get('limits') or {}).get('note')}")
    before = stack.emulator_requests()["total"]
    time.sleep(BACKGROUND_S)
    background = (stack.emulator_requests()["total"] - before) / BACKGROUND_S
    plain_before = plain_rate(model_path)
    rounds: list[Round] = []
    for n in range(args.rounds):
        data = images(args.requests, first=n * args.requests)
        rounds.append(run_round(stack, "idle fleet" if n == 0 else f"warm round {n}", data))
    plain_after = plain_rate(model_path)
    rate = (plain_before + plain_after) / 2
    floor = args.requests / rate
    print(f"plain tf.function      {rate:.1f} images/s (batch 32, this run: "
          f"{plain_before:.1f} before the rounds, {plain_after:.1f} after): compute floor "
          f"for {args.requests} images {floor:.1f} s")
    print(f"idle stack             {background:.1f} emulator requests/s of its own "
          "(runner, scaler, bridge)")
    for n, r in enumerate(rounds):
        report(r, log, floor, background, origin, warm=n > 0)
    return [a for r in rounds for a in r.answers]


if __name__ == "__main__":
    # Exit only on failure: `make bench` runs this module in-process, then the next one.
    if code := main():
        raise SystemExit(code)
