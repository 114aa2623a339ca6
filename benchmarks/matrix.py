"""Regenerate results/matrix/: rlsuite vs Stable-Baselines3, DQN / A2C / PPO on CartPole-v1, Acrobot-v1
and LunarLander-v3, plus REINFORCE's own curves (docs/protocol.md). `rlsuite bench` runs this last.

    python benchmarks/matrix.py                          # the whole matrix, 10 seeds (hours on 2 cores)
    python benchmarks/matrix.py --cells ppo:Acrobot-v1   # one cell; the report still covers every cell
    python benchmarks/matrix.py --cells a2c:LunarLander-v3 --no-report   # train only

Each cell trains rlsuite (its agent card) and SB3 (the zoo's values from the card's baseline section)
for the env card's budget for that agent, the same for both, alternating seed by seed in one process
(1 torch thread, CPU). Runs live under results/runs/bench-dqn and results/runs/bench-pg/<agent>, shared
with benchmarks/dqn.py and benchmarks/pg.py, and are reused while their settings match (--force redoes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from scipy.stats import trim_mean

from rlsuite.config import cards
from rlsuite.config.cards import load_env_card
from rlsuite.core.stats import aggregate
from rlsuite.experiments import compare
from rlsuite.experiments.compare import differences_from_zoo
from rlsuite.experiments.plots import plot_curves, plot_grid
from rlsuite.experiments.report import aggregate_table, header, per_seed_table, ratio_lines, report_folder
from rlsuite.registry import get_agent
from rlsuite.sb3.hyperparameters import SB3_ALGORITHMS, baseline_hyperparameters

AGENTS = ("dqn", "a2c", "ppo", "reinforce")
# Cards changed since the 5-seed report of 2026-11-28 (seeds 0-4). That report's raw figures are kept in
# matrix/matrix-2026-11-28.json (its matrix.json as committed), so each changed cell shows the old card's
# figure beside the new one's.
PREVIOUS = "matrix/matrix-2026-11-28.json"
CHANGED = {
    ("dqn", "CartPole-v1"): "1-step returns (now 3-step)",
    ("ppo", "CartPole-v1"): "the zoo's values (now found by `rlsuite tune`)",
    ("reinforce", "CartPole-v1"): "constant lr, before a fix to its returns (now lr annealed to 0)",
}
ENVS = ("CartPole-v1", "Acrobot-v1", "LunarLander-v3")


def runs_root(out: Path, agent: str) -> Path:
    return out / "runs" / ("bench-dqn" if agent == "dqn" else f"bench-pg/{agent}")


def budget(agent: str, env_id: str) -> int:
    """The one budget of the agent on the env (the cards'), the same for rlsuite and SB3."""
    return cards.budget(agent, get_agent(agent).config_cls, env_id)


def run_cell(agent: str, env_id: str, seeds, out: Path, force: bool) -> dict[str, list[dict]]:
    steps = budget(agent, env_id)
    variants = (compare.ours_and_sb3(agent, env_id, steps) if agent in SB3_ALGORITHMS
                else {"rlsuite": compare.ours(agent, env_id, steps)})

    def log(label, seed, s):
        print(f"{agent} {env_id} {label} seed {seed}: final {s['final_eval']['mean']:.1f}, "
              f"{s['steps_per_s']:,.0f} steps/s, {s['wall_s'] / 60:.1f} min", flush=True)

    return compare.side_by_side(env_id, seeds, runs_root(out, agent), variants, force, log)


def zoo_budget_note(agent: str, env_id: str, steps: int) -> str:
    if agent not in SB3_ALGORITHMS:
        return "SB3 has no REINFORCE: rlsuite's own curve, no baseline row."
    zoo, _ = baseline_hyperparameters(agent, env_id)
    if zoo.get("n_timesteps") and int(zoo["n_timesteps"]) != budget(agent, env_id):
        return (f"The zoo trains this one for {int(zoo['n_timesteps']):,} steps; both implementations get the env "
                f"card's {budget(agent, env_id):,} here.")
    return ""


def zoo_differences(agent: str, env_id: str) -> dict | None:
    """Fields where rlsuite's card differs from the zoo's values ({} = same), None without SB3 counterpart."""
    return differences_from_zoo(agent, env_id) if agent in SB3_ALGORITHMS else None


def hyperparameters_cell(diff: dict | None) -> str:
    """'same' when rlsuite's card runs the zoo's values (the steps/s ratio is then a like-for-like speed
    comparison), else the fields that differ."""
    if diff is None:
        return "—"
    return "same" if not diff else "card: " + ", ".join(sorted(diff))


def provenance_note(results: dict) -> str:
    """Say so when a seed's rlsuite and SB3 runs were not trained one after the other (reused from
    different invocations): their steps/s ratio then spans machine drift."""
    if "sb3" not in results:
        return ""
    apart = []
    for a, b in zip(results["rlsuite"], results["sb3"]):
        gap = abs(Path(a["run_dir"], "summary.json").stat().st_mtime - Path(b["run_dir"], "summary.json").stat().st_mtime)
        # alternating runs finish one run (plus its evaluations) apart
        apart.append(gap > 3 * max(a["wall_s"], b["wall_s"]) + 600)
    if not any(apart):
        return ""
    return (f"For {sum(apart)} of {len(apart)} seeds, rlsuite's and SB3's runs were trained in different invocations "
            "on this machine (finished runs reused), not one right after the other: read the steps/s ratio with "
            "that in mind.")


def title_of(agent: str) -> str:
    return "REINFORCE" if agent == "reinforce" else agent.upper()


def previous_card(agent: str, env_id: str, out: Path) -> dict | None:
    """The changed card's figures in the previous report: stays solved k/n and IQM final (None if unchanged)."""
    path = out / PREVIOUS
    if (agent, env_id) not in CHANGED or not path.exists():
        return None
    runs = json.loads(path.read_text())[f"{agent}:{env_id}"]["rlsuite"]
    finals = [r["final"] for r in runs]
    return {"what": CHANGED[agent, env_id], "stays_solved": sum(r["stays_solved"] for r in runs), "n": len(runs),
            "iqm": float(trim_mean(finals, 0.25)), "seeds": [r["seed"] for r in runs]}


def previous_cell(previous: dict | None) -> str:
    return "—" if previous is None else f"{previous['stays_solved']}/{previous['n']}, IQM {previous['iqm']:.1f}"


def summary_row(agent: str, env_id: str, results: dict, diff: dict | None, previous: dict | None) -> str:
    ours = aggregate(results["rlsuite"])
    cells = [title_of(agent), env_id, f"{budget(agent, env_id):,}",
             f"{ours['stays_solved']}/{ours['n']}", f"{ours['final_iqm']:.1f}"]
    if "sb3" in results:
        r = ratio_lines(results["rlsuite"], results["sb3"], "rlsuite", "sb3")
        theirs = r["theirs"]
        both_solved = ours["solved"] and theirs["solved"]
        cells += [f"{theirs['stays_solved']}/{theirs['n']}", f"{theirs['final_iqm']:.1f}",
                  f"{r['wall_to_solve']:.2f}×" if both_solved else "— (not solved)", f"{r['steps_per_s']:.2f}×"]
    else:
        cells += ["no SB3 REINFORCE", "—", "—", "—"]
    cells += [hyperparameters_cell(diff), previous_cell(previous)]
    return "| " + " | ".join(cells) + " |"


def cell_section(agent: str, env_id: str, results: dict, diff: dict | None, out: Path, n_seeds: int,
                 previous: dict | None) -> list[str]:
    first = results["rlsuite"][0]
    title = f"{title_of(agent)} on {env_id}"
    steps = budget(agent, env_id)
    trained = "" if first["steps"] == steps else f"; whole rollouts make it {first['steps']:,}"
    lines = [f"### {title} (threshold {first['threshold']:g}, budget {steps:,} steps{trained})", ""]
    for note in (zoo_budget_note(agent, env_id, first["steps"]), provenance_note(results)):
        lines += [note, ""] if note else []
    if diff:
        lines += ["rlsuite's card differs from the zoo's values in: " + "; ".join(
            f"{k} {ours} (zoo {zoo})" for k, (ours, zoo) in sorted(diff.items())) + ".", ""]
    if previous:
        seeds = f"{min(previous['seeds'])}-{max(previous['seeds'])}"
        lines += [f"The card changed since the report of 2026-11-28. The previous card ({previous['what']}) stayed "
                  f"solved in {previous['stays_solved']}/{previous['n']} seeds ({seeds}), IQM final "
                  f"{previous['iqm']:.1f}; the table below is the current card.", ""]
    lines += aggregate_table(results, load_env_card(env_id).max_return)
    lines += ["<details><summary>per seed</summary>", ""] + per_seed_table(results) + ["</details>", ""]
    labels = {s["run_dir"]: f"{name} {agent}" for name, v in results.items() for s in v}
    figure = plot_curves(list(labels), out / "matrix" / f"{agent}_{env_id}", labels=labels,
                         title=f"{title}: mean and 95% band over {n_seeds} seeds")
    return lines + [f"![{title}]({figure.paths[0].name})", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--cells", default=None, help="agent:env,... to train (default: all)")
    parser.add_argument("--out", default="results")
    parser.add_argument("--force", action="store_true", help="retrain the selected cells' finished runs")
    parser.add_argument("--no-report", action="store_true", help="train only; do not rewrite results/matrix/")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    seeds = list(range(args.seeds))
    every = [(a, e) for a in AGENTS for e in ENVS]
    chosen = every
    if args.cells:
        chosen = [tuple(c.split(":", 1)) for c in args.cells.split(",")]
        unknown = [c for c in chosen if c not in every]
        if unknown:
            sys.exit(f"unknown cell {':'.join(unknown[0])}; cells are agent:env with agent in {AGENTS}, env in {ENVS}")
    started = time.time()
    results = {}
    for agent, env_id in every:  # unselected cells are only read back (trained if missing) when reporting
        if (agent, env_id) in chosen:
            results[agent, env_id] = run_cell(agent, env_id, seeds, out, args.force)
    if args.no_report:
        return
    for agent, env_id in every:
        if (agent, env_id) not in results:
            results[agent, env_id] = run_cell(agent, env_id, seeds, out, False)
    command = "python " + " ".join(["benchmarks/matrix.py"] + sys.argv[1:])
    report = header("Classic control: rlsuite vs Stable-Baselines3", command, seeds)
    report += [
        "Every cell: rlsuite with its agent card vs SB3 with rl-baselines3-zoo's values (recorded in the same "
        "card), the same seeds, the env card's budget for that agent for both, run alternating seed by seed in one "
        "process. *stays solved* = final 20-episode evaluation ≥ the env's threshold; IQM of the final "
        "evaluations; ratios are rlsuite / SB3 medians (wall-to-solve: lower is better; steps/s: higher is better; "
        "wall-to-solve only where both solved). *hyperparameters vs zoo*: `same` when rlsuite's card runs the "
        "zoo's values, so the steps/s ratio compares the implementations like for like; otherwise the fields in "
        "which the card differs. *previous card*: where a card changed since the 5-seed report of 2026-11-28, "
        "that card's figures there (seeds 0-4). Training can run as two such processes at once on the 2 cores (one torch thread "
        "each); both implementations of a cell share whatever load there is.", "",
        "| agent | env | budget | rlsuite stays solved | rlsuite IQM final | SB3 stays solved | SB3 IQM final "
        "| wall-to-solve ratio | steps/s ratio | hyperparameters vs zoo | previous card: stays solved, IQM |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    diffs = {cell: zoo_differences(*cell) for cell in every}  # resolving cards builds envs: once per cell
    previous = {cell: previous_card(*cell, out) for cell in every}
    report += [summary_row(a, e, results[a, e], diffs[a, e], previous[a, e]) for a, e in every] + [""]
    grid = {(title_of(a), e): {name: [s["run_dir"] for s in v] for name, v in results[a, e].items()} for a, e in every}
    overview = plot_grid(grid, report_folder(out, "matrix") / "overview",
                         f"rlsuite vs SB3: evaluation return, mean and 95% band over {len(seeds)} seeds")
    report += [f"![rlsuite vs SB3, every cell]({overview[0].name})", ""]
    trained = sum(s["wall_s"] for cell in results.values() for v in cell.values() for s in v)
    report += [f"Training time of the {sum(len(v) for c in results.values() for v in c.values())} runs behind this "
               f"page: {trained / 3600:.1f} h (evaluation excluded); this invocation took "
               f"{(time.time() - started) / 60:.1f} min (finished runs are reused).", ""]
    for env_id in ENVS:
        report += [f"## {env_id}", ""]
        for agent in AGENTS:
            report += cell_section(agent, env_id, results[agent, env_id], diffs[agent, env_id], out, len(seeds),
                                   previous[agent, env_id])
    raw = {f"{a}:{e}": {name: [{k: s[k] for k in ("seed", "steps", "wall_s", "steps_per_s", "steps_to_solve",
                                                    "wall_to_solve", "solved", "stays_solved")}
                               | {"final": s["final_eval"]["mean"]} for s in v] for name, v in cell.items()}
           for (a, e), cell in results.items()}
    (out / "matrix" / "matrix.json").write_text(json.dumps(raw, indent=1))
    (out / "matrix" / "README.md").write_text("\n".join(report) + "\n")
    print(f"wrote {out / 'matrix' / 'README.md'}")


if __name__ == "__main__":
    main()
