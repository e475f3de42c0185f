"""``python -m bench.simulate``: replay arrival traces through skyclass's scaling policy,
the student system's and a fixed fleet, on a simulated clock (bench/fleet_sim.py), and
write the comparison to docs/scaling.md with a plot per trace (docs/scaling-*.png).

Traces: a burst of 1,000 images, a trickle (one image every 30 s), a burst that lands
while the first worker boots, a steady Poisson stream, and a day of traffic compressed
twelvefold into two hours. A burst meets the scheduled tick at any moment,
so each trace is replayed with the tick at six offsets (0, 10, ... 50 s): latencies are
pooled over them, costs averaged, peaks the highest. The figures are deterministic.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.fleet_sim import (
    Cloud,
    FixedFleet,
    FleetPolicy,
    OurPolicy,
    Outcome,
    StudentPolicy,
    percentile,
    simulate,
)
from skyclass.runtime.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"
BEGIN, END = "<!-- simulate:begin -->", "<!-- simulate:end -->"
PHASES = (0, 10, 20, 30, 40, 50)
SEED = 20261125


@dataclass(frozen=True)
class Trace:
    name: str
    title: str
    arrivals: list[float]


def burst(images: int = 1000, at: float = 30.0, over: float = 10.0) -> list[float]:
    """``images`` uploaded evenly within ``over`` seconds, from ``at``."""
    return [at + over * n / images for n in range(images)]


def poisson(rate: Callable[[float], float], seconds: int, seed: int = SEED) -> list[float]:
    """Arrivals of a Poisson process with a per-second ``rate(t)``, spread within each
    second."""
    rng = np.random.default_rng(seed)
    arrivals: list[float] = []
    for t in range(seconds):
        count = int(rng.poisson(rate(t)))
        arrivals.extend(sorted((t + rng.random(count)).tolist()))
    return arrivals


def day_rate(t: float, compress: float = 12.0, night: float = 0.5, peak: float = 60.0) -> float:
    """Images per second at second ``t`` of a day compressed ``compress``-fold: quiet at
    night, rising from 07:00 to a peak at 14:30, quiet again after 22:00."""
    hour = (t * compress / 3600.0) % 24
    day = math.sin(math.pi * (hour - 7) / 15) ** 2 if 7 <= hour <= 22 else 0.0
    return night + (peak - night) * day


def trickle(every: float = 30.0, seconds: float = 1800.0, at: float = 30.0) -> list[float]:
    """One image every ``every`` seconds for ``seconds``, from ``at``."""
    return [at + every * n for n in range(int(seconds / every))]


def burst_during_boot(first: int = 5, then: int = 1000, gap: float = 30.0) -> list[float]:
    """``first`` images that cold-start a worker, then ``then`` images ``gap`` seconds
    later, while it boots."""
    return sorted(burst(first, at=30.0, over=1.0) + burst(then, at=30.0 + gap))


def traces() -> list[Trace]:
    return [
        Trace("burst", "a burst of 1,000 images (uploaded within 10 s)", burst()),
        Trace("trickle", "a trickle: one image every 30 s for 30 minutes", trickle()),
        Trace("boot-burst", "5 images, then a burst of 1,000 30 s later, while the first "
              "worker boots", burst_during_boot()),
        Trace("poisson", "a Poisson stream, 5 images/s for 30 minutes",
              poisson(lambda t: 5.0, 30 * 60)),
        Trace("day", "a day compressed into 2 hours: 0.5 images/s at night, 60 at 14:30",
              poisson(day_rate, 2 * 3600)),
    ]


def policies(cloud: Cloud, settings: Settings) -> list[Callable[[], FleetPolicy]]:
    """Fresh policy objects per run (ours keeps its grace window between ticks)."""
    return [lambda: OurPolicy(settings, cloud.per_worker), StudentPolicy,
            lambda: FixedFleet(3)]


def our_settings(cloud: Cloud) -> Settings:
    """skyclass's defaults, with the simulated cloud's boot time and throughput and a
    pool as large as the student's fleet, so no policy is capped by its pool."""
    return Settings.from_env({}, max_workers=cloud.pool_size, boot_time=cloud.boot_time,
                             worker_throughput=cloud.per_worker)


@dataclass(frozen=True)
class Row:
    trace: str
    policy: str
    p50: float
    p95: float
    instance_minutes: float
    peak: int
    starts: float  # instance starts (cold starts), averaged over the phases


def compare(trace: Trace, cloud: Cloud, settings: Settings,
            phases: Sequence[int] = PHASES) -> tuple[list[Row], dict[str, Outcome]]:
    """Every policy over every phase; returns the rows and each policy's first run (to
    plot)."""
    rows, shown = [], {}
    for make in policies(cloud, settings):
        runs = [simulate(trace.arrivals, make(), cloud, phase=phase) for phase in phases]
        latencies = [x for run in runs for x in run.latencies]
        assert len(latencies) == len(trace.arrivals) * len(phases), "an image got no result"
        rows.append(Row(trace.name, runs[0].policy, percentile(latencies, 50),
                        percentile(latencies, 95),
                        sum(r.instance_minutes for r in runs) / len(runs),
                        max(r.peak for r in runs),
                        sum(r.starts for r in runs) / len(runs)))
        shown[runs[0].policy] = runs[0]
    return rows, shown


def verdict(rows: Sequence[Row]) -> tuple[bool, str]:
    """Does skyclass beat the student on cost, at the same or better p95? By how much?"""
    ours = next(r for r in rows if r.policy == "skyclass")
    student = next(r for r in rows if r.policy == "student")
    cheaper = 1 - ours.instance_minutes / student.instance_minutes
    ok = ours.instance_minutes < student.instance_minutes and ours.p95 <= student.p95
    return ok, (f"{'beats' if ok else 'DOES NOT beat'} the student: "
                f"{cheaper:.0%} fewer instance-minutes "
                f"({ours.instance_minutes:.1f} vs {student.instance_minutes:.1f}), "
                f"p95 {ours.p95:.0f} s vs {student.p95:.0f} s")


def sensitivity(trace_list: Sequence[Trace], cloud: Cloud, settings: Settings,
                targets: Sequence[float] = (30.0, 60.0, 120.0),
                graces: Sequence[float] = (120.0, 300.0)) -> str:
    """skyclass's p95, cost and instance starts per trace for other target latencies and
    idle graces: the table the defaults were chosen from."""
    header = " | ".join(f"{t.name} p95 (s) / inst-min / starts" for t in trace_list)
    lines = [f"| target latency | idle grace | {header} |",
             "| ---: | ---: |" + " ---: |" * len(trace_list)]
    for target in targets:
        for grace in graces:
            tuned = settings.replace(target_latency=target, idle_grace=grace)
            cells = []
            for trace in trace_list:
                runs = [simulate(trace.arrivals, OurPolicy(tuned, cloud.per_worker), cloud,
                                 phase=phase) for phase in PHASES]
                p95 = percentile([x for r in runs for x in r.latencies], 95)
                cost = sum(r.instance_minutes for r in runs) / len(runs)
                starts = sum(r.starts for r in runs) / len(runs)
                cells.append(f"{p95:.0f} / {cost:.1f} / {starts:.3g}")
            lines.append(f"| {target:g} s | {grace:g} s | {' | '.join(cells)} |")
    return "\n".join(lines)


def table(rows: Sequence[Row]) -> str:
    lines = ["| trace | policy | p50 (s) | p95 (s) | instance-minutes | instance starts "
             "| peak instances |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r.trace} | {r.policy} | {r.p50:.0f} | {r.p95:.0f} | "
              f"{r.instance_minutes:.1f} | {r.starts:.3g} | {r.peak} |" for r in rows]
    return "\n".join(lines)


def plot(trace: Trace, shown: dict[str, Outcome], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    minutes = 60.0
    for name, run in shown.items():
        t = [x / minutes for x in run.times]
        top.plot(t, run.backlog, label=name, linewidth=1)
        bottom.step(t, run.up, where="post", label=name, linewidth=1)
    top.set_ylabel("backlog (images)")
    bottom.set_ylabel("instances up")
    bottom.set_xlabel("minutes (tick offset 0 s)")
    top.set_title(trace.title)
    top.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def report(all_rows: Sequence[Row], verdicts: Sequence[str], cloud: Cloud,
           settings: Settings, trace_list: Sequence[Trace], tuning: str) -> str:
    traces_md = "\n".join(f"- **{t.name}**: {t.title}; {len(t.arrivals):,} images." +
                          f" ![{t.name}](scaling-{t.name}.png)" for t in trace_list)
    return f"""{BEGIN}
_Written by `python -m bench.simulate`; do not edit by hand._

Simulated cloud: boot {cloud.boot_time:g} s from StartInstances to a working worker \
(pending {cloud.pending_time:g} s), {cloud.per_worker:g} images/s per worker, receives \
of {cloud.batch_size}, a scaling tick every {cloud.period:g} s, a pool of \
{cloud.pool_size} instances. skyclass runs its defaults: target latency \
{settings.target_latency:g} s, idle grace {settings.idle_grace:g} s, min workers \
{settings.min_workers}. Each trace is replayed with the tick at offsets \
{", ".join(str(p) for p in PHASES)} s: latencies (upload to result) are pooled, \
instance-minutes and instance starts (each a cold start that pays a boot) averaged \
(per-second billing from start to stop, 60 s minimum per start), peaks the highest.

{table(all_rows)}

{chr(10).join(f"- **{v}**" for v in verdicts)}

{traces_md}

skyclass with other settings (same traces and offsets):

{tuning}
{END}"""


def write_doc(path: Path, block: str) -> None:
    """Replace the generated block in ``path``, keeping the prose around it."""
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Scaling\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    path.write_text(pattern.sub(lambda _: block, text), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=DOCS, help="where scaling.md and the "
                        "plots go")
    args = parser.parse_args(argv)
    cloud = Cloud()
    settings = our_settings(cloud)
    trace_list = traces()
    all_rows: list[Row] = []
    verdicts: list[str] = []
    beaten = True
    args.docs.mkdir(parents=True, exist_ok=True)
    for trace in trace_list:
        rows, shown = compare(trace, cloud, settings)
        ok, line = verdict(rows)
        beaten &= ok
        all_rows += rows
        verdicts.append(f"{trace.name}: skyclass {line}")
        plot(trace, shown, args.docs / f"scaling-{trace.name}.png")
    print(table(all_rows))
    print("\n".join(verdicts))
    tuning = sensitivity(trace_list, cloud, settings)
    print(tuning)
    write_doc(args.docs / "scaling.md",
              report(all_rows, verdicts, cloud, settings, trace_list, tuning))
    print(f"wrote {args.docs / 'scaling.md'} and its plots")
    return 0 if beaten else 1


if __name__ == "__main__":
    # Exit only on failure: `make bench` runs this module in-process, then the next one.
    if code := main():
        sys.exit(code)
