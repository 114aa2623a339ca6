"""Regenerate results/populations/compare.md: what `rlsuite compare` spends on each side.

    python benchmarks/compare_cost.py                               # dqn CartPole-v1, 10 seeds
    python benchmarks/compare_cost.py --task ppo:CartPole-v1 --seeds 10

Runs the command a user runs, `rlsuite compare AGENT ENV --seeds N --workers W`, in a child process, with its
runs under OUT/runs/bench-compare (finished runs are reused and interrupted ones resumed when the script is run
again, as compare itself does), and its output appended to OUT/runs/bench-compare/compare-output.log. Then it reads every run's summary and reports each side's training CPU seconds
and wall-clock (evaluation left out, as the run engine times runs): rlsuite's N seeds train as one population in
compare's own process, SB3's one process per seed on the worker pool beside it. The issue's target: rlsuite's side
spends at least 5x less than SB3's. It also counts the live view's lines per run while both sides trained.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from rlsuite.experiments.report import header, report_folder


def sides(root: Path) -> dict[str, list[dict]]:
    """label -> the summaries of that side's runs under ROOT/runs (names start with the label)."""
    out: dict[str, list[dict]] = {}
    for summary in sorted(root.glob("runs/*/summary.json")):
        data = json.loads(summary.read_text())
        label = summary.parent.name.split("-")[0]
        out.setdefault(label, []).append(data)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="dqn:CartPole-v1")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="compare's --workers (its default on 2 cores)")
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    agent, _, env_id = args.task.partition(":")
    out = Path(args.out) / "runs" / "bench-compare"
    out.mkdir(parents=True, exist_ok=True)
    command = ["rlsuite", "compare", agent, env_id, "--seeds", str(args.seeds), "--workers", str(args.workers),
               "--out", str(out)]
    started = time.time()
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "rlsuite.cli", *command[1:]], capture_output=True, text=True, env=env)
    log = out / "compare-output.log"  # every invocation's output, kept: a re-run reuses runs and shows none training
    with log.open("a") as f:
        f.write(f"$ {' '.join(command)}\n{proc.stderr}{proc.stdout}")
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    report = out / "runs" / f"compare-{agent}-{env_id.replace('/', '-').replace(':', '-')}" / "report.md"
    if not report.exists():
        report = None
    if report is None:
        sys.exit(f"no report.md under {out}")
    results = sides(report.parent)
    if set(results) != {"rlsuite", "sb3"} or any(len(v) != args.seeds for v in results.values()):
        sys.exit(f"expected {args.seeds} runs a side under {report.parent}, found "
                 f"{ {k: len(v) for k, v in results.items()} }")
    live = {}  # run -> live-view lines naming it (the view prints a line per run in flight at each refresh)
    for line in log.read_text().splitlines():
        match = re.search(r"\b(rlsuite|sb3)-\S+-s(\d+)\b", line)
        if match:
            live[match.group(0)] = live.get(match.group(0), 0) + 1
    lines = header(f"What `rlsuite compare {agent} {env_id}` spends on each side", f"python {' '.join(['benchmarks/compare_cost.py'] + sys.argv[1:])}",
                   list(range(args.seeds)))
    lines += [f"The command: `{' '.join(command)}`, run as a child process. Training CPU seconds and wall-clock from each run's "
              "summary (evaluation left out). rlsuite's seeds are one population in compare's process (a member's CPU "
              "is its share, the population's / N; its wall is the population's); SB3's seeds are one process each on "
              f"{args.workers} worker(s) beside it. Target: rlsuite's side at least 5× cheaper than SB3's.", "",
              "| side | runs | training CPU s (sum) | wall s | SB3 / rlsuite |", "|---|---|---|---|---|"]
    cpu = {k: sum(s["cpu_s"] for s in v) for k, v in results.items()}
    wall = {"rlsuite": max(s["wall_s"] for s in results["rlsuite"]),  # the members share one clock
            "sb3": sum(s["wall_s"] for s in results["sb3"])}
    for side in ("rlsuite", "sb3"):
        ratio = f"CPU {cpu['sb3'] / cpu['rlsuite']:.2f}×, wall {wall['sb3'] / wall['rlsuite']:.2f}×" if side == "sb3" else ""
        lines.append(f"| {side} | {len(results[side])} | {cpu[side]:,.0f} | {wall[side]:,.0f} | {ratio} |")
    shown = sum(1 for k in live if k.startswith("rlsuite")), sum(1 for k in live if k.startswith("sb3"))
    lines += ["", f"Live view: {shown[0]} of rlsuite's {args.seeds} runs and {shown[1]} of SB3's appear in its lines while "
              f"training, over every invocation's output kept in `{log}` (a run trained by an invocation whose "
              "output was not kept is not counted).",
              "", f"The comparison's own report: `{report}`.", "",
              f"This invocation took {(time.time() - started) / 60:.1f} min (finished runs are reused)."]
    path = report_folder(Path(args.out), "populations") / "compare.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
