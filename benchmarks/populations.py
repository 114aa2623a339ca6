"""Regenerate results/populations/: N seeds in one process as a population, against N separate runs.

    python benchmarks/populations.py                                  # every cell, 10 seeds each side
    python benchmarks/populations.py --cells ppo:CartPole-v1 --seeds 10

For each cell (agent, env, the card's budget) it trains
  - a population of N members on seeds 200.. (one process: stacked networks, one vector env), and
  - N separate runs, one after another, on seeds 200+N.. (fresh seeds, so the two sets are independent samples),
and reports
  - cost: the population's training CPU seconds against one separate run's (the median), and the process CPU
    seconds with evaluation included (every member is evaluated on gymnasium's own env, as a separate run is);
  - learning: stays-solved counts and IQMs with 95% bootstrap intervals of both sets: a population's members
    must be statistically the same as separate runs.
Runs live under OUT/runs/bench-populations; finished ones (and finished populations) are reused while their
settings match, interrupted separate runs and populations resume from their checkpoints (--force redoes all), so
a regeneration can span sessions. The report is rewritten after every cell; cells not yet measured are listed
as pending.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rlsuite import runs
from rlsuite.config.cards import budget as card_budget
from rlsuite.core.stats import aggregate
from rlsuite.experiments.report import fmt, header, report_folder
from rlsuite.registry import get_agent

CELLS = ("ppo:CartPole-v1", "a2c:CartPole-v1", "dqn:CartPole-v1", "sac:Pendulum-v1", "td3:Pendulum-v1", "ppo:Acrobot-v1",
         "a2c:Acrobot-v1", "dqn:Acrobot-v1")
FIRST_SEED = 200


def population(agent: str, env_id: str, seeds: list[int], steps: int, root: Path, force: bool) -> dict:
    """The population's summaries and process CPU/wall. Its members are runs of one folder: finished ones are
    reused while their settings match, members interrupted at one checkpoint resume together (a session can end
    mid-population), the rest train afresh. process.json adds up the process CPU of every invocation that trained
    them; one killed before it could write its share leaves `complete: false`, and the report says so."""
    folder = root / f"pop-{agent}-{env_id}-s{seeds[0]}-n{len(seeds)}"
    stamp = json.loads(json.dumps(runs.fingerprint(agent, env_id, steps), default=str))
    names = [f"member-s{seed}" for seed in seeds]
    record = folder / "process.json"
    if force and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    totals = json.loads(record.read_text()) if record.exists() else {}
    if not isinstance(totals.get("fingerprint"), dict) or not runs.same_experiment(totals["fingerprint"], stamp):
        totals = {"fingerprint": stamp, "process_cpu_s": 0.0, "process_wall_s": 0.0, "complete": True}
    finished = [runs.finished_summary(folder, name, stamp) for name in names]
    if any(s is None for s in finished):
        if totals.get("open"):  # the last invocation died without writing its share
            totals["complete"] = False
        record.write_text(json.dumps({**totals, "open": True}, indent=1))
        cpu, wall = time.process_time(), time.perf_counter()
        finished = runs.reuse_or_train_seeds(folder, names, seeds, agent, env_id, steps=steps, fingerprint=stamp,
                                             progress=True)
        totals["process_cpu_s"] += time.process_time() - cpu
        totals["process_wall_s"] += time.perf_counter() - wall
        record.write_text(json.dumps({**totals, "open": False}, indent=1))
        if any(s.get("status") in ("interrupted", "busy") for s in finished):
            print("stopped; re-run the same command: the population resumes from its checkpoints", file=sys.stderr)
            sys.exit(130)
    return {"summaries": finished, **totals}


def separate(agent: str, env_id: str, seeds: list[int], steps: int, root: Path, force: bool) -> list[dict]:
    """One run per seed, one after another, each reused / resumed like a benchmark run; process CPU kept."""
    stamp = runs.fingerprint(agent, env_id, steps)
    out = []
    for seed in seeds:
        name = f"single-{agent}-{env_id}-s{seed}"
        sidecar = root / "runs" / name / "process.json"
        cpu, wall = time.process_time(), time.perf_counter()

        def train_fn(name, lock, seed=seed):
            return runs.train(agent, env_id, seed=seed, steps=steps, out=root, progress=False, name=name, lock=lock)

        summary = runs.reuse_or_train(root, name, train_fn, force, stamp)
        if summary.get("status") != "complete":
            print(f"stopped; {summary['run_dir']} is checkpointed: re-run the same command to resume", file=sys.stderr)
            sys.exit(summary.get("exit_code") or 130)
        if not sidecar.exists():  # trained (not reused) in this invocation: its process CPU, evaluation included
            sidecar.write_text(json.dumps({"process_cpu_s": time.process_time() - cpu,
                                           "process_wall_s": time.perf_counter() - wall}))
        out.append({**summary, **json.loads(sidecar.read_text())})
        print(agent, env_id, "seed", seed, round(summary["final_eval"]["mean"], 1), flush=True)
    return out


def learning_row(label: str, summaries: list[dict]) -> str:
    a = aggregate(summaries)
    low, high = a["final_ci"]
    return (f"| {label} | {a['n']} | {a['stays_solved']}/{a['n']} | {fmt(a['final_iqm'])} [{fmt(low)}, {fmt(high)}] | "
            f"{', '.join(fmt(f) for f in a['finals'])} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", default=",".join(CELLS), help="agent:env pairs, comma-separated")
    parser.add_argument("--seeds", type=int, default=10, help="members of the population, and separate runs")
    parser.add_argument("--out", default="results")
    parser.add_argument("--steps", type=int, default=None, help="a budget for every cell (default: the cards')")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.seeds <= 100:
        parser.error("--seeds must be in [1, 100]")
    if not Path(args.out).is_dir():
        parser.error(f"--out {args.out} is not a folder")
    torch.set_num_threads(1)
    root = Path(args.out) / "runs" / "bench-populations"
    n = args.seeds
    pop_seeds = list(range(FIRST_SEED, FIRST_SEED + n))
    sep_seeds = list(range(FIRST_SEED + n, FIRST_SEED + 2 * n))
    started = time.time()
    report = header("Populations: N seeds in one process against N separate runs",
                    f"python {' '.join(['benchmarks/populations.py'] + sys.argv[1:])}", None)
    report += [f"Population seeds {pop_seeds[0]}–{pop_seeds[-1]}; separate runs on seeds {sep_seeds[0]}–{sep_seeds[-1]} "
               "(fresh, independent of the population's). Training CPU seconds leave evaluation out (as the run "
               "engine times every run); a member's share is the population's CPU / N. Process CPU includes "
               "evaluation, which every member does on gymnasium's own env, as a separate run does.", "",
               "## Cost", "",
               "| cell | budget | population of N: training CPU s | one separate run: training CPU s (median) | "
               "ratio | population process CPU s | N separate runs: process CPU s | process ratio |",
               "|---|---|---|---|---|---|---|---|"]
    learning = ["## Learning: members against separate runs", "",
                "| cell / set | runs | stays solved | final IQM [95% CI] | finals |", "|---|---|---|---|---|"]
    cost: list[str] = []
    incomplete = False
    cells = args.cells.split(",")
    for i, cell in enumerate(cells):
        agent, _, env_id = cell.partition(":")
        steps = args.steps or card_budget(agent, get_agent(agent).config_cls, env_id)
        pop = population(agent, env_id, pop_seeds, steps, root, args.force)
        singles = separate(agent, env_id, sep_seeds, steps, root, args.force)
        members = pop["summaries"]
        done = [s for s in members if s.get("status") == "complete"]
        pop_cpu = sum(s["cpu_s"] for s in done)
        # a process CPU below the training CPU it contains lost an invocation's share (one killed, or a record
        # reset by an older script): a lower bound, marked ≥
        pop["complete"] = pop["complete"] and pop["process_cpu_s"] >= pop_cpu
        incomplete = incomplete or not pop["complete"]
        one_cpu = float(np.median([s["cpu_s"] for s in singles]))
        sep_process = sum(s["process_cpu_s"] for s in singles)
        cost.append(f"| {agent} {env_id} | {steps:,} | {pop_cpu:,.0f} | {one_cpu:,.0f} | **{pop_cpu / one_cpu:.2f}×** | "
                    f"{'' if pop['complete'] else '≥ '}{pop['process_cpu_s']:,.0f} | {sep_process:,.0f} | "
                    f"{'' if pop['complete'] else '≥ '}{pop['process_cpu_s'] / sep_process:.2f}× |")
        learning.append(learning_row(f"{agent} {env_id}: population", done))
        learning.append(learning_row(f"{agent} {env_id}: separate", singles))
        if len(done) < len(members):
            learning.append(f"| {agent} {env_id}: {len(members) - len(done)} member(s) failed | | | | |")
        # written after every cell: a stopped invocation leaves its finished cells, and lists the others as pending
        pending = [f"| {c.replace(':', ' ')} | — | not yet measured | | pending | | | |" for c in cells[i + 1:]]
        lines = report + cost + pending + [
            "", f"Ratio: the population's training CPU over one separate run's (N = {n}); the target is at most 2.5× "
            "for DQN and PPO on CartPole-v1, 4× for SAC on Pendulum-v1. Where a cell's networks are wide, its "
            "updates are arithmetic-bound and cost N times their FLOPs: results/populations/profile.md.", ""]
        if incomplete:
            lines += ["≥: a lower bound: an invocation that trained that population lost its share of the process CPU "
                      "(killed before it could add it).", ""]
        took = f"This invocation took {(time.time() - started) / 60:.1f} min (finished runs are reused)."
        if pending:
            took += f" {len(pending)} cell(s) not yet measured: the command above, run again, goes on from here."
        path = report_folder(Path(args.out), "populations") / "README.md"
        path.write_text("\n".join(lines + learning + ["", took]) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
