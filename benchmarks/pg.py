"""Regenerate results/pg/: rlsuite REINFORCE / A2C / PPO vs Stable-Baselines3 (docs/protocol.md).

    python benchmarks/pg.py                              # CartPole PPO + A2C side by side, REINFORCE curves
    python benchmarks/pg.py --sections lunarlander       # PPO on LunarLander-v3, 1M steps (hours on 2 cores)
    python benchmarks/pg.py --sections cartpole,reinforce,lunarlander --seeds 10

Sections:
  cartpole     PPO: rlsuite (card) vs SB3 (zoo) vs rlsuite@zoo (SB3's exact hyperparameters, for speed).
  ppo-cartpole the PPO half of cartpole alone, into results/pg/ppo-cartpole/ (after a card change).
               A2C: rlsuite (card) vs SB3 (zoo) vs rlsuite@zoo (SB3's exact hyperparameters, for speed).
  reinforce    REINFORCE on CartPole-v1: SB3 has no REINFORCE, so its own curve only.
  lunarlander  PPO on LunarLander-v3, rlsuite vs SB3, 1M steps.
Finished runs under results/runs/bench-pg/<agent> are reused while their settings match; --force retrains them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from rlsuite.config.cards import load_env_card
from rlsuite.experiments import compare
from rlsuite.experiments.plots import plot_curves
from rlsuite.experiments.report import aggregate_table, header, per_seed_table, ratio_lines, report_folder, verdict
from rlsuite.sb3.hyperparameters import baseline_hyperparameters, overrides_from_sb3


def log(label: str, seed: int, summary: dict) -> None:
    print(summary["env_id"], label, seed, round(summary["final_eval"]["mean"], 1),
          f"{summary['steps_per_s']:.0f} steps/s", flush=True)


def section(title, agent, env_id, results, out, notes) -> list[str]:
    """A report section; its figure goes to the report's folder OUT."""
    first = next(iter(results.values()))[0]
    lines = [f"## {title} (threshold {first['threshold']:g}, budget {first['steps']:,} steps)", ""]
    lines += aggregate_table(results, load_env_card(env_id).max_return) + notes
    lines += per_seed_table(results)
    labels = {s["run_dir"]: f"{name} {agent}" for name, v in results.items() for s in v}
    paths = plot_curves(list(labels), out / f"{agent}_{env_id}", labels=labels,
                        title=f"{title}: mean and 95% band over seeds").paths
    return lines + [f"![{title}]({paths[0].name})", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sections", default="cartpole,reinforce")
    parser.add_argument("--out", default="results")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--baseline-seeds", type=int, default=None,
                        help="lunarlander: run SB3 on the first K seeds only (it is ~5x slower there)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    root = out / "runs" / "bench-pg"
    seeds = list(range(args.seeds))
    sections = args.sections.split(",")
    # a section alone writes its own report beside the whole one (which needs every section's runs)
    alone = {("lunarlander",): "pg/lunarlander", ("ppo-cartpole",): "pg/ppo-cartpole"}
    folder = report_folder(out, alone.get(tuple(sections), "pg"))
    started = time.time()
    report = header("Policy-gradient agents: rlsuite vs Stable-Baselines3",
                    f"python {' '.join(['benchmarks/pg.py'] + sys.argv[1:])}", seeds)
    if "cartpole" in sections or "ppo-cartpole" in sections:
        env_id = "CartPole-v1"
        zoo, _ = baseline_hyperparameters("ppo", env_id)
        variants = compare.ours_and_sb3("ppo", env_id)
        variants["rlsuite@zoo"] = compare.ours("ppo", env_id, overrides=overrides_from_sb3("ppo", zoo))
        ppo = compare.side_by_side(env_id, seeds, root / "ppo", variants, args.force, log)
        r = ratio_lines(ppo["rlsuite"], ppo["sb3"], "rlsuite", "sb3")
        same = ratio_lines(ppo["rlsuite@zoo"], ppo["sb3"], "rlsuite@zoo", "sb3")
        report += section("PPO on CartPole-v1", "ppo", env_id, ppo, folder, [
            "rlsuite's seeds train as one population of 10 (one process), SB3's one after another; a population "
            "member's wall-clock is its whole population's, so the per-seed cost is read in CPU seconds: CPU-to-solve "
            "is the training CPU seconds to the first solving evaluation (a member's share of its population's). "
            "The card (tuned with the objective's cost term) differs from the zoo's values; rlsuite@zoo runs the "
            "zoo's values for the like-for-like speed ratio.", "",
            "Targets: stays solved in at least 9/10; CPU-to-solve below SB3's; steps per CPU second ≥ 2× SB3's "
            "with identical hyperparameters (rlsuite@zoo).", "",
            f"- stays solved: rlsuite **{r['ours']['stays_solved']}/{r['ours']['n']}**, SB3 {r['theirs']['stays_solved']}/"
            f"{r['theirs']['n']}, rlsuite@zoo {same['ours']['stays_solved']}/{same['ours']['n']}",
            f"- median CPU-to-solve rlsuite / SB3 = **{r['cpu_to_solve']:.2f}×** (target < 1: "
            f"{verdict(r['cpu_to_solve'], 1.0, False)}); median wall-to-solve {r['wall_to_solve']:.2f}× (a member's "
            "wall is its population's)",
            f"- steps per CPU second: rlsuite / SB3 {r['steps_per_cpu_s']:.2f}×; rlsuite@zoo / SB3 "
            f"**{same['steps_per_cpu_s']:.2f}×** (target ≥ 2×: {verdict(same['steps_per_cpu_s'], 2.0, True)})", ""])
    if "cartpole" in sections:
        env_id = "CartPole-v1"
        zoo, _ = baseline_hyperparameters("a2c", env_id)
        variants = compare.ours_and_sb3("a2c", env_id)
        variants["rlsuite@zoo"] = compare.ours("a2c", env_id, overrides=overrides_from_sb3("a2c", zoo))
        a2c = compare.side_by_side(env_id, seeds, root / "a2c", variants, args.force, log)
        speed = ratio_lines(a2c["rlsuite@zoo"], a2c["sb3"], "rlsuite@zoo", "sb3")
        wall = ratio_lines(a2c["rlsuite"], a2c["sb3"], "rlsuite", "sb3")
        report += section("A2C on CartPole-v1", "a2c", env_id, a2c, folder, [
            "Targets: 5/5 stay solved; steps/s ≥ 2× SB3's with identical hyperparameters (rlsuite@zoo).", "",
            f"- stays solved: rlsuite **{wall['ours']['stays_solved']}/{wall['ours']['n']}**, "
            f"SB3 {wall['theirs']['stays_solved']}/{wall['theirs']['n']}, rlsuite@zoo {speed['ours']['stays_solved']}/{speed['ours']['n']}",
            f"- median wall-to-solve rlsuite / SB3 = **{wall['wall_to_solve']:.2f}×**",
            f"- steps/s rlsuite@zoo / SB3 = **{speed['steps_per_s']:.2f}×** (per seed: {', '.join(f'{p:.2f}' for p in speed['pairs'])}; "
            f"target ≥ 2×: {verdict(speed['steps_per_s'], 2.0, True)})", ""])
    if "reinforce" in sections:
        res = compare.side_by_side("CartPole-v1", seeds, root / "reinforce", {"rlsuite": compare.ours("reinforce", "CartPole-v1")},
                                   args.force, log)
        report += section("REINFORCE on CartPole-v1", "reinforce", "CartPole-v1", res, folder, [
            "SB3 has no REINFORCE, so there is no baseline row: this is rlsuite's own curve. "
            "Learning-test target: final evaluation ≥ 400.", ""])
    if "lunarlander" in sections:
        env_id = "LunarLander-v3"
        k = len(seeds) if args.baseline_seeds is None else args.baseline_seeds
        ll = compare.side_by_side(env_id, seeds[:k], root / "ppo", compare.ours_and_sb3("ppo", env_id), args.force, log)
        rest = compare.side_by_side(env_id, seeds[k:], root / "ppo", {"rlsuite": compare.ours("ppo", env_id)}, args.force, log)
        ll["rlsuite"] += rest["rlsuite"]
        finals = {name: sum(s["final_eval"]["mean"] >= 200 for s in v) for name, v in ll.items()}
        counts = {name: len(v) for name, v in ll.items()}
        report += section("PPO on LunarLander-v3", "ppo", env_id, ll, folder, [
            f"Target: final ≥ 200 in at least 4/5 of the seeds within 1M steps. rlsuite: **{finals['rlsuite']}/{counts['rlsuite']}**, "
            f"SB3 (same invocation, seeds {seeds[:k]}): {finals.get('sb3', 0)}/{counts.get('sb3', 0)}. "
            "Zoo PPO on v2: 242 ± 32 at 1M, first ≥ 200 at 430k.", ""])
    report.append(f"This invocation took {(time.time() - started) / 60:.1f} min (finished runs are reused).")
    (folder / "README.md").write_text("\n".join(report) + "\n")
    print(f"wrote {folder / 'README.md'}")


if __name__ == "__main__":
    main()
