"""Regenerate results/peers/: rlsuite (one seed, and a population of 10) against SB3, SBX (SB3 in JAX) and rejax
(PureJaxRL-style, the whole loop jitted) on DQN CartPole-v1, PPO CartPole-v1 and SAC Pendulum-v1.

    pip install -e '.[peers]'                                         # SBX (and JAX) beside rlsuite
    python -m venv ~/.venvs/rejax && ~/.venvs/rejax/bin/pip install rejax 'gymnax<1.0'   # rejax: a venv of its own
    python benchmarks/peers.py --rejax-python ~/.venvs/rejax/bin/python                  # every task, 3 repetitions
    python benchmarks/peers.py --tasks ppo:CartPole-v1 --impls rlsuite,sbx --reps 1

Every implementation trains with the zoo's hyperparameters for the task (the agent card's `baseline:` section),
translated to each peer's own fields where it can express them; the report lists what each cannot. Each
measurement is a child process pinned to one core with one thread (torch, BLAS and XLA), the implementations
alternated within each repetition. Reported per measurement:
  - train CPU-s: CPU seconds of the training call alone (rlsuite: its runs' training time, evaluation excluded;
    JAX peers: the jitted training after compilation);
  - process CPU-s: the whole child process (imports, JAX compilation, rlsuite's periodic evaluations, the final
    evaluation), read from the OS for the child;
  - finals: each seed's final evaluation, 20 episodes on gymnasium's own env from the protocol's evaluation seeds.
A population's and rejax-vmap's CPU is for all 10 seeds; the table also gives it per seed.

rejax needs gymnax, which requires gymnasium<1.4 (rlsuite requires >=1.4), so it runs under its own interpreter
(--rejax-python; benchmarks/peers_rejax.py); without one its rows are skipped and the report says so.
Finished measurements are kept in OUT/runs/bench-peers/*.json and reused; --redo IMPL,... measures those again.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TASKS = {"dqn:CartPole-v1": 50_000, "ppo:CartPole-v1": 100_000, "sac:Pendulum-v1": 20_000}
IMPLS = ("rlsuite", "rlsuite-pop10", "sb3", "sbx", "rejax", "rejax-vmap10")
# Cells measured on a shorter budget, or not at all, because the full one costs hours on 2 cores: rejax's SAC
# spends tens of milliseconds per env step on this CPU (its 1M-transition buffer), so its one seed runs a probe of
# PROBE steps, reported as a rate, and ten seeds vmapped are not run.
PROBE = 2_000
PROBED = {("sac:Pendulum-v1", "rejax")}
NOT_RUN = {("sac:Pendulum-v1", "rejax-vmap10"): "rejax's one-seed probe on SAC runs at tens of ms per env step here; "
                                                "ten seeds of 20,000 steps would take hours"}
POPULATION = 10
FIRST_SEED = 300  # fresh seeds: no card was tuned on them
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false",
              "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}

# What each peer cannot express of the zoo's values (listed in the report).
DIFFERENCES = {
    "sbx": {"dqn:CartPole-v1": "none (SBX's DQN takes SB3's arguments; Adam from optax)",
            "ppo:CartPole-v1": "none (SB3's arguments; Adam from optax)",
            "sac:Pendulum-v1": "none (SB3's arguments; Adam from optax)"},
    "rejax": {"dqn:CartPole-v1": "64×64 swish Q-network (rejax fixes the hidden sizes) instead of 256×256 ReLU; one "
                                 "update every 2 env steps (num_envs 2) instead of 128 updates every 256 steps; "
                                 "grad clipping elementwise (optax.clip) instead of by norm",
              "ppo:CartPole-v1": "constant learning rate 1e-3 and clip range 0.2 (the zoo anneals both to 0); Adam "
                                 "eps 1e-8 (SB3 1e-5); grad clipping elementwise (optax.clip) instead of by norm; "
                                 "acts by sampling when evaluated",
              "sac:Pendulum-v1": "one update per env step as in the zoo; rejax's SAC clips log σ to [-10, 2] "
                                 "(SB3 [-20, 2]); acts by sampling when evaluated"},
}


def zoo(agent: str, env_id: str) -> dict:
    from rlsuite.sb3.hyperparameters import baseline_hyperparameters

    return baseline_hyperparameters(agent, env_id)[0]


def rejax_config(task: str) -> dict:
    """The zoo's values for TASK in rejax's fields (see DIFFERENCES for what does not carry over)."""
    return {
        "dqn:CartPole-v1": {"learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000, "fill_buffer": 1_000,
                            "gamma": 0.99, "target_update_freq": 256, "polyak": 0.0, "num_envs": 2, "num_epochs": 1,
                            "eps_start": 1.0, "eps_end": 0.04, "exploration_fraction": 0.16, "ddqn": False,
                            "max_grad_norm": 10.0, "agent_kwargs": {"activation": "swish"}},
        "ppo:CartPole-v1": {"num_envs": 8, "num_steps": 32, "num_minibatches": 1, "num_epochs": 20, "gae_lambda": 0.8,
                            "gamma": 0.98, "learning_rate": 1e-3, "clip_eps": 0.2, "ent_coef": 0.0, "vf_coef": 0.5,
                            "max_grad_norm": 0.5, "agent_kwargs": {"activation": "tanh", "hidden_layer_sizes": [64, 64]}},
        "sac:Pendulum-v1": {"learning_rate": 1e-3, "buffer_size": 1_000_000, "fill_buffer": 100, "batch_size": 256,
                            "polyak": 0.995, "gamma": 0.99, "num_envs": 1, "num_epochs": 1, "target_update_freq": 1,
                            "hidden_layer_sizes": [256, 256], "agent_kwargs": {"activation": "relu"}},
    }[task]


# ---------------------------------------------------------------------------------------------
# Children: one measurement each, in a process of its own


def child_rlsuite(task: str, seeds: list[int], steps: int, root: Path) -> dict:
    import torch

    from rlsuite import runs
    from rlsuite.sb3.hyperparameters import overrides_from_sb3

    torch.set_num_threads(1)
    agent, env_id = task.split(":")
    overrides = {k: v for k, v in overrides_from_sb3(agent, zoo(agent, env_id), env_id).items() if k != "total_steps"}
    overrides["eval_every"] = steps  # no periodic evaluation: the peers evaluate once, at the end
    folder = root / "rlsuite" / f"{task.replace(':', '-')}-s{seeds[0]}-n{len(seeds)}"
    summaries = runs.train_seeds(agent, env_id, seeds, steps=steps, overrides=overrides, out=folder, progress=False)
    if any(s.get("status") != "complete" for s in summaries):
        raise SystemExit(f"rlsuite {task}: {[s.get('error') or s.get('status') for s in summaries]}")
    return {"train_cpu_s": float(sum(s["cpu_s"] for s in summaries)),
            "finals": [s["final_eval"]["mean"] for s in summaries]}


def child_sb3(task: str, seeds: list[int], steps: int, library: str) -> dict:
    import torch

    from rlsuite.config.cards import load_env_card
    from rlsuite.core.seeding import Seeds
    from rlsuite.run.evaluation import evaluate
    from rlsuite.sb3.baseline import make_model

    torch.set_num_threads(1)
    agent, env_id = task.split(":")
    hp = zoo(agent, env_id)
    card = load_env_card(env_id)
    cpu, finals = 0.0, []
    for seed in seeds:
        model = make_model(agent, card, hp, seed, "cpu", int(hp.get("n_envs", 1)), library=library)
        start = time.process_time()
        model.learn(total_timesteps=steps)
        cpu += time.process_time() - start
        returns = evaluate(lambda obs: model.predict(obs, deterministic=True)[0], card, 20, Seeds(seed).eval_envs(20))
        finals.append(float(np.mean(returns)))
    import importlib.metadata as metadata

    return {"train_cpu_s": cpu, "finals": finals,
            "versions": {name: metadata.version(name) for name in ("sbx-rl", "jax")} if library == "sbx" else {}}


def child(args) -> None:
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.child == "rlsuite":
        out = child_rlsuite(args.task, seeds, args.steps, Path(args.root))
    else:
        out = child_sb3(args.task, seeds, args.steps, {"sb3": "stable_baselines3", "sbx": "sbx"}[args.child])
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------------
# The parent: alternate the implementations, one child each, one core


def command(impl: str, task: str, seeds: list[int], steps: int, root: Path, rejax_python: str | None) -> list[str] | None:
    seed_list = ",".join(map(str, seeds))
    if impl.startswith("rejax"):
        if not rejax_python:
            return None
        from rlsuite.core.seeding import Seeds

        return [rejax_python, str(HERE / "peers_rejax.py"), task.split(":")[0], task.split(":")[1], "--steps",
                str(steps), "--seeds", seed_list, "--config", json.dumps(rejax_config(task)),
                "--eval-seed", str(Seeds(seeds[0]).eval_envs(1)[0])]  # episodes seeded from there on
    kind = "rlsuite" if impl.startswith("rlsuite") else impl
    return [sys.executable, __file__, "--child", kind, "--task", task, "--seeds", seed_list, "--steps", str(steps),
            "--root", str(root)]


def measure(argv: list[str], core: int) -> dict:
    """Run one child pinned to CORE; its JSON line plus the OS's CPU seconds and wall for the whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    proc = subprocess.run(argv, env={**os.environ, **ONE_THREAD}, capture_output=True, text=True,
                          preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(argv[:4])}… exited {proc.returncode}: {' | '.join(tail)}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out["process_wall_s"] = wall
    return out


def seeds_of(impl: str, rep: int) -> list[int]:
    n = POPULATION if impl.endswith(f"{POPULATION}") else 1
    return list(range(FIRST_SEED + rep * POPULATION, FIRST_SEED + rep * POPULATION + n))


def cell(records: list[dict], key: str, per_seed: bool = False) -> str:
    values = [r[key] / (len(r["finals"]) if per_seed else 1) for r in records if key in r]
    if not values:
        return "—"
    lo, hi = min(values), max(values)
    return f"{lo:,.1f}" if len(values) == 1 or f"{lo:,.1f}" == f"{hi:,.1f}" else f"{lo:,.1f}–{hi:,.1f}"


TARGETS = {"dqn:CartPole-v1": 2.5, "ppo:CartPole-v1": 2.5, "sac:Pendulum-v1": 4.0}  # population of 10 / one seed


def summary(results: dict, tasks: list[str]) -> list[str]:
    """The issue's questions, from the medians: what a population of 10 costs against one seed, one seed against
    SBX, and ten PPO seeds against rejax's ten vmapped."""
    def median(task, impl, key):
        values = [r[key] for r in results.get(task, {}).get(impl, []) if r.get("steps", TASKS[task]) == TASKS[task]]
        return float(np.median(values)) if values else None

    rows = ["## Summary", "", "| task | population of 10 / one seed, train CPU (target) | one seed / SBX, train CPU "
            "(target ≤ 1) | ten seeds: rlsuite population / rejax vmapped, process CPU (target ≤ 1) |", "|---|---|---|---|"]
    for task in tasks:
        one, pop = median(task, "rlsuite", "train_cpu_s"), median(task, "rlsuite-pop10", "train_cpu_s")
        sbx, pop_p, vmap_p = (median(task, "sbx", "train_cpu_s"), median(task, "rlsuite-pop10", "process_cpu_s"),
                              median(task, "rejax-vmap10", "process_cpu_s"))
        cells = [f"{pop / one:.2f}× (≤ {TARGETS[task]:g}×)" if one and pop else "—",
                 f"{one / sbx:.2f}×" if one and sbx else "—", f"{pop_p / vmap_p:.2f}×" if pop_p and vmap_p else "—"]
        rows.append(f"| {task} | " + " | ".join(cells) + " |")
    return rows + [""]


def report(results: dict, tasks: list[str], impls: list[str], reps: int, skipped: list[str], command_line: str,
           minutes: float) -> str:
    from rlsuite.experiments.report import header

    lines = header("Peers: rlsuite against SB3, SBX and rejax, one thread each", command_line, None)
    peers = {k: v for r in (r for t in results.values() for rs in t.values() for r in rs) for k, v in r.get("versions", {}).items()}
    lines += [f"Peers: {', '.join(f'{k} {v}' for k, v in sorted(peers.items()))}  ",
              f"Seeds: repetition r uses {FIRST_SEED} + {POPULATION}r (one seed) and the {POPULATION} seeds from there "
              "(a population, rejax-vmap); no card was tuned on them.", "", "Each implementation trains with the zoo's hyperparameters (the agent card's `baseline:` section), "
              "one child process per measurement, pinned to one core with one thread, the implementations "
              f"alternated within each of {reps} repetition(s). CPU seconds; ranges over repetitions. "
              "*train*: the training call alone (rlsuite: its runs' training time; JAX: after compilation). "
              "*process*: the whole child process as the OS counts it (imports, compilation, evaluations). "
              f"Population and vmap rows train {POPULATION} seeds; *per seed* divides their CPU by {POPULATION}. "
              "*final*: mean over seeds and repetitions of the final 20-episode evaluation on gymnasium's env.", ""]
    lines += summary(results, tasks)
    for task in tasks:
        agent, env_id = task.split(":")
        lines += [f"## {agent.upper()} {env_id}, {TASKS[task]:,} steps", "",
                  "| implementation | seeds | train CPU-s | train CPU-s per seed | process CPU-s | process CPU-s per seed "
                  "| process / rlsuite 1 seed | final (mean) | measurements |",
                  "|---|---|---|---|---|---|---|---|---|"]
        base = [r["process_cpu_s"] for r in results.get(task, {}).get("rlsuite", [])]
        for impl in impls:
            records = results.get(task, {}).get(impl, [])
            if not records:
                continue
            finals = [f for r in records for f in r["finals"]]
            probe = records[0].get("steps", TASKS[task]) != TASKS[task]
            if probe:  # a shorter budget: its rate, not a time comparable with the others
                ms = np.median([r["train_cpu_s"] / r["steps"] * 1000 for r in records])
                lines.append(f"| {impl} (probe: {records[0]['steps']:,} steps) | {len(records[0]['finals'])} | "
                             f"{cell(records, 'train_cpu_s')} ({ms:.1f} ms per env step) | — | "
                             f"{cell(records, 'process_cpu_s')} | — | — | {np.mean(finals):.1f} at {records[0]['steps']:,} steps "
                             f"| {len(records)} |")
                continue
            ratio = (f"{np.median([r['process_cpu_s'] for r in records]) / np.median(base):.2f}×" if base else "—")
            lines.append(f"| {impl} | {len(records[0]['finals'])} | {cell(records, 'train_cpu_s')} | "
                         f"{cell(records, 'train_cpu_s', True)} | {cell(records, 'process_cpu_s')} | "
                         f"{cell(records, 'process_cpu_s', True)} | {ratio} | {np.mean(finals):.1f} | {len(records)} |")
        if any(r.get("compile_cpu_s") for impl in impls for r in results.get(task, {}).get(impl, [])):
            compiles = [r["compile_cpu_s"] for impl in impls if impl.startswith("rejax")
                        for r in results.get(task, {}).get(impl, [])]
            lines += ["", f"rejax compilation: {min(compiles):.1f}–{max(compiles):.1f} CPU-s (in *process*, not in *train*)."]
        lines += ["", "What the peers cannot express of the zoo's values:", ""]
        lines += [f"- {peer}: {DIFFERENCES[peer][task]}" for peer in DIFFERENCES]
        lines.append("")
    if skipped:
        lines += ["Not measured: " + "; ".join(skipped), ""]
    lines += [f"This invocation took {minutes:.1f} min (finished measurements are reused)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--core", type=int, default=os.cpu_count() - 1, help="the core every child is pinned to")
    parser.add_argument("--rejax-python", default=None, help="the interpreter of a venv with rejax installed")
    parser.add_argument("--results", default=str(HERE.parent / "results"))
    parser.add_argument("--out", default=str(HERE.parent / "results" / "runs" / "bench-peers"))
    parser.add_argument("--redo", default="", help="implementations to measure again (comma-separated)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--task", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seeds", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--root", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    tasks, impls = args.tasks.split(","), args.impls.split(",")
    for name, given, known in (("task", tasks, TASKS), ("implementation", impls, IMPLS)):
        unknown = [g for g in given if g not in known]
        if unknown:
            raise SystemExit(f"unknown {name} {unknown}; choose from {', '.join(known)}")
    if args.reps < 1:
        raise SystemExit("--reps must be at least 1")
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict = {}
    skipped = []
    for rep in range(args.reps):
        for task in tasks:
            order = impls[rep % len(impls):] + impls[:rep % len(impls)]  # alternate who goes first
            for impl in order:
                seeds = seeds_of(impl, rep)
                record = root / f"{task.replace(':', '-')}-{impl}-r{rep}.json"
                if record.exists() and impl not in args.redo.split(","):
                    results.setdefault(task, {}).setdefault(impl, []).append(json.loads(record.read_text()))
                    continue
                if (task, impl) in NOT_RUN:
                    note = f"{impl} on {task}: {NOT_RUN[task, impl]}"
                    if note not in skipped:
                        skipped.append(note)
                    continue
                steps = PROBE if (task, impl) in PROBED else TASKS[task]
                argv = command(impl, task, seeds, steps, root, args.rejax_python)
                if argv is None:
                    note = "rejax (no --rejax-python given)"
                    if note not in skipped:
                        skipped.append(note)
                    continue
                print(f"[rep {rep}] {task} {impl} seeds {seeds[0]}–{seeds[-1]} …", flush=True)
                try:
                    out = measure(argv, args.core)
                except RuntimeError as e:
                    print(f"  failed: {e}", file=sys.stderr)
                    skipped.append(f"{impl} on {task}, rep {rep} (failed: {str(e)[-160:]})")
                    continue
                out.update(impl=impl, task=task, seeds=seeds, rep=rep, steps=steps)
                tmp = record.with_suffix(".tmp")
                tmp.write_text(json.dumps(out, indent=1))
                tmp.replace(record)
                results.setdefault(task, {}).setdefault(impl, []).append(out)
                print(f"  process {out['process_cpu_s']:.1f} CPU-s, train {out['train_cpu_s']:.1f}, "
                      f"finals {np.round(out['finals'], 1).tolist()}", flush=True)
    from rlsuite.experiments.report import report_folder

    command_line = "python benchmarks/peers.py " + " ".join(a for a in sys.argv[1:])
    folder = report_folder(args.results, "peers")
    text = report(results, tasks, impls, args.reps, skipped, command_line.strip(), (time.perf_counter() - started) / 60)
    (folder / "README.md").write_text(text)
    print(f"wrote {folder / 'README.md'}")


if __name__ == "__main__":
    main()
