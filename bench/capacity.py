"""What N machines would serve, from `bench/load.py` runs (issue 16, part 4): queueing arithmetic,
not a measurement.

    .venv/bin/python bench/capacity.py RUN.json [RUN.json ...] [--machines 10] [--processes-per-machine 2]
        [--service-s S]

The service time S of one app process (seconds per answer while its queue never empties: the
span of its answers over their number, median over the runs' processes; with `--dedicated` its CPU
seconds per answer, what it would take with a core of its own; or `--service-s`) gives
each process 60/S answers a minute, and the deployment `machines * processes-per-machine` times
that. The waits before a process starts on a question are M/M/c ones: questions arrive at random
(Poisson), service times exponential with mean S; then scaled by (1 + cv²) / 2, cv the measured
service times' coefficient of variation (the gaps between a backlogged process's answers), the
Allen-Cunneen approximation for general service times. An answer's time is its wait plus its own
service time. Two routings: `sticky`, each visitor pinned to one process (the page
keeps a visitor's session in the process that served it, so that is what a load balancer must do
today): c independent M/M/1 queues; `pooled`, each question to the first free process (would need
the session outside the process): one M/M/c queue.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path


def erlang_c(servers: int, load: float) -> float:
    """Probability that a question waits, M/M/c with `load` = arrival rate x mean service time.

    >>> round(erlang_c(1, 0.5), 3), round(erlang_c(2, 1.0), 3)
    (0.5, 0.333)
    """
    if load >= servers:
        return 1.0
    term, total = 1.0, 1.0  # a^k / k!, summed for k < servers
    for k in range(1, servers):
        term *= load / k
        total += term
    last = term * load / servers / (1 - load / servers)
    return last / (total + last)


def wait_p95(waiting: float, rate: float) -> float:
    """95th percentile of an M/M/c wait: 0 with probability 1 - `waiting`, else exponential at
    `rate` (c/S - arrivals).

    >>> wait_p95(0.01, 1.0), round(wait_p95(0.5, 1.0), 2)
    (0.0, 2.3)
    """
    return math.log(waiting / 0.05) / rate if waiting > 0.05 else 0.0


def waits(servers: int, arrivals_per_minute: float, service: float, variation: float = 1.0) -> dict:
    """Mean and p95 wait before a process starts on a question (seconds) at `arrivals_per_minute`,
    pooled and sticky. `variation` is the service times' coefficient of variation: the M/M/c
    waits are scaled by (1 + variation²) / 2 (Allen-Cunneen), 1 for exponential times."""
    arrivals = arrivals_per_minute / 60
    load = arrivals * service
    scale = (1 + variation**2) / 2
    pooled = erlang_c(servers, load)
    share = arrivals / servers  # sticky: each process an M/M/1 queue with its share of the visitors
    return {"utilisation": round(load / servers, 3),
            "pooled_mean_wait_s": round(scale * pooled * service / (servers - load), 1),
            "pooled_p95_wait_s": round(scale * wait_p95(pooled, servers / service - arrivals), 1),
            "sticky_mean_wait_s": round(scale * share * service / (1 / service - share), 1),
            "sticky_p95_wait_s": round(scale * wait_p95(share * service, 1 / service - share), 1)}


def service_times(run: dict) -> list[float]:
    """One process's service times: the gaps between its consecutive answers while it had a
    backlog (every visitor starts at once; the first answer's time also holds the start)."""
    gaps = []
    for process in {v["url"] for v in run["visitors_detail"] if "url" in v}:
        done = sorted(a["finished_s"] for v in run["visitors_detail"] if v.get("url") == process
                      for a in v["answers"])
        gaps += [b - a for a, b in zip(done, done[1:], strict=False)]
    return gaps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="bench/load.py --json outputs")
    parser.add_argument("--machines", type=int, default=10)
    parser.add_argument("--processes-per-machine", type=int, default=2, help="one per core (QA_THREADS=1)")
    parser.add_argument("--service-s", type=float, help="seconds per answer of one process (default: measured)")
    parser.add_argument("--dedicated", action="store_true",
                        help="S = the processes' CPU seconds per answer (what a core of their own would take), "
                             "not the seconds per answer on this shared machine")
    args = parser.parse_args(argv)
    runs = [json.loads(path.read_text(encoding="utf-8")) for path in args.runs]
    key = "cpu_s_per_answer" if args.dedicated else "seconds_per_answer"
    measured = [p[key] for r in runs for p in r["processes_detail"] if p.get(key)]
    service = args.service_s or statistics.median(measured)
    gaps = [g for r in runs for g in service_times(r)]
    variation = statistics.pstdev(gaps) / statistics.fmean(gaps) if len(gaps) > 1 else 1.0
    servers = args.machines * args.processes_per_machine
    capacity = 60 * servers / service
    out = {"service_s": round(service, 2), "measured_service_s": measured, "from": key, "processes": servers,
           "service_gaps": {"n": len(gaps), "median_s": round(statistics.median(gaps), 2) if gaps else None,
                            "variation": round(variation, 2)},
           "capacity_per_minute": round(capacity, 1),
           "load_average_during_runs": [r["load_before"][0] for r in runs],
           "arrivals": {f"{share:.0%} of capacity ({share * capacity:.0f}/min)":
                        waits(servers, share * capacity, service, variation)
                        for share in (0.5, 0.7, 0.8, 0.9, 0.95)}}
    stores = [r["postgres"] for r in runs if r.get("postgres")]
    if stores:
        out["store"] = {"active_share_of_answering": [s["active_share_of_answering"] for s in stores],
                        "active_s_per_answer": [s["active_s_per_answer"] for s in stores],
                        "question_ms": [(s.get("probe") or {}).get("question_ms") for s in stores],
                        "cpu_share": [s.get("cpu_share") for s in stores],
                        # seconds of PostgreSQL backend time per second, the deployment at capacity
                        "store_busy_at_capacity": round(capacity / 60 * max(s["active_s_per_answer"]
                                                                            for s in stores), 3)}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
