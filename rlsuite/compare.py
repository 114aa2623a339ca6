"""Side-by-side runs: several variants (rlsuite, SB3, ...) of one agent on one env over the same seeds,
alternating seed by seed in one process, each finished run reused unless forced."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Callable

from rlsuite import runs
from rlsuite.cards import load_env_card
from rlsuite.baselines import baseline_fingerprint, train_baseline


def side_by_side(env_id: str, seeds, out: Path, variants: dict[str, tuple[Callable, dict]], force: bool = False,
                 on_result: Callable | None = None) -> dict[str, list[dict]]:
    """variants: label -> (f(seed=..., out=..., progress=False, name=...) -> summary, fingerprint). Run
    directories are OUT/runs/<label>-<env>-s<seed> (so give each agent its own OUT), reused while their
    fingerprint matches; alternating order so machine drift hits every variant alike."""
    results: dict[str, list[dict]] = {label: [] for label in variants}
    for seed in seeds:
        for label, (fn, stamp) in variants.items():
            job = partial(fn, seed=seed, out=out, progress=False)
            safe_env = env_id.replace("/", "-").replace(":", "-")
            results[label].append(runs.reuse_or_train(out, f"{label}-{safe_env}-s{seed}", job, force, stamp))
            if results[label][-1].get("status") == "interrupted":  # Ctrl-C / SIGTERM: stop here, not at the next seed
                print(f"stopped; {results[label][-1]['run_dir']} is checkpointed: re-run the same command to resume",
                      file=sys.stderr, flush=True)
                sys.exit(results[label][-1].get("exit_code") or 130)
            if on_result:
                on_result(label, seed, results[label][-1])
    return results


def ours(agent: str, env_id: str, steps: int | None = None, overrides: dict | None = None) -> tuple[Callable, dict]:
    """rlsuite's `agent` with its card (plus overrides), and the fingerprint of that experiment."""
    return (partial(runs.train, agent, env_id, steps=steps, overrides=overrides),
            runs.fingerprint(agent, env_id, steps, overrides))


def ours_and_sb3(agent: str, env_id: str, steps: int | None = None, overrides: dict | None = None,
                 sb3_overrides: dict | None = None) -> dict:
    """The two variants `rlsuite compare` runs: rlsuite with its card, SB3 with the zoo's values
    (`sb3_overrides`, in SB3's names, change the same settings on its side)."""
    return {"rlsuite": ours(agent, env_id, steps, overrides),
            "sb3": (partial(train_baseline, agent, env_id, steps=steps, overrides=sb3_overrides),
                    baseline_fingerprint(agent, env_id, steps, sb3_overrides))}


def compare_report(agent: str, env_id: str, n_seeds: int, steps: int | None, overrides: dict, out, force: bool,
                   echo=print) -> tuple[list[str], Path]:
    """Run (or reuse) rlsuite and SB3 on seeds 0..n-1, write report.md + plots; return the table and path."""
    import hashlib
    import json

    from rlsuite.plots import plot_curves
    from rlsuite.report import aggregate_table, header, per_seed_table, ratio_lines

    tag = ""
    if steps is not None or overrides:  # different budgets or settings must not reuse each other's runs
        tag = "-" + hashlib.sha1(json.dumps([steps, sorted(overrides.items())]).encode()).hexdigest()[:8]
    root = Path(out) / "runs" / f"compare-{agent}-{env_id.replace('/', '-').replace(':', '-')}{tag}"
    seeds = list(range(n_seeds))

    def progress(label, seed, summary):
        echo(f"{label} seed {seed}: final {summary['final_eval']['mean']:.1f}, {summary['steps_per_s']:,.0f} steps/s")

    from rlsuite.baselines import sb3_overrides_for

    sb3_set, ours_only = sb3_overrides_for(overrides)  # --set changes both sides where both have the setting
    if ours_only:
        echo(f"rlsuite only (SB3 has no such setting): {', '.join(ours_only)}")
    results = side_by_side(env_id, seeds, root, ours_and_sb3(agent, env_id, steps, overrides, sb3_set or None),
                           force, progress)
    r = ratio_lines(results["rlsuite"], results["sb3"], "rlsuite", "sb3")
    table = aggregate_table(results, load_env_card(env_id).max_return)
    solvable = results["rlsuite"][0].get("threshold") is not None
    table += [(f"rlsuite / SB3: median wall-to-solve {r['wall_to_solve']:.2f}×, " if solvable else "rlsuite / SB3: ")
              + f"median steps/s {r['steps_per_s']:.2f}×"]
    labels = {s["run_dir"]: f"{name} {agent}" for name, v in results.items() for s in v}
    plots = plot_curves(list(labels), root / "curves", labels=labels,
                        title=f"{agent} on {env_id}: rlsuite vs SB3, mean and 95% band over {n_seeds} seeds").paths
    command = f"rlsuite compare {agent} {env_id} --seeds {n_seeds}" + (f" --steps {steps}" if steps else "") + \
        "".join(f" --set {k}={v}" for k, v in overrides.items())
    lines = header(f"{agent} on {env_id}: rlsuite vs Stable-Baselines3", command, seeds) + table + [""]
    lines += per_seed_table(results) + [f"![curves]({plots[0].name})", ""]
    report = root / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return table, report
