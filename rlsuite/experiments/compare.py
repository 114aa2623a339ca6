"""Side-by-side runs: several variants (rlsuite, SB3, ...) of one agent on one env over the same seeds, each
finished run reused unless forced. rlsuite's seeds train together as one population in this process; the
other variants' seeds run one after another here (alternating seed by seed), or with `workers` on a pool of
that many processes beside the population."""

from __future__ import annotations

import glob
import hashlib
import json
import math
import sys
from functools import partial
from pathlib import Path
from typing import Callable

from rlsuite import runs
from rlsuite.config.cards import load_env_card, resolve
from rlsuite.config.schema import to_data
from rlsuite.core.errors import UserError, close_matches
from rlsuite.experiments.jobs import JobPool, job_main
from rlsuite.experiments.plots import expand_run_dirs, field_name, plot_curves, run_fields
from rlsuite.experiments.report import aggregate_table, final_episodes, header, iqm_verdict, per_seed_table, ratio_lines
from rlsuite.registry import get_agent
from rlsuite.run.live import LiveRuns
from rlsuite.run.rundir import RunBusy, read_run_config, read_status
from rlsuite.sb3.baseline import train_baseline
from rlsuite.sb3.hyperparameters import (
    baseline_fingerprint,
    baseline_hyperparameters,
    sb3_overrides_for,
    zoo_as_rlsuite,
)


def run_name(label: str, env_id: str, seed: int) -> str:
    return f"{label}-{env_id.replace('/', '-').replace(':', '-')}-s{seed}"


def side_by_side(env_id: str, seeds, out: Path, variants: dict[str, tuple[Callable, dict]], force: bool = False,
                 on_result: Callable | None = None, skip_busy: bool = False, workers: int = 0) -> dict[str, list[dict]]:
    """variants: label -> (f(seed=..., out=..., progress=False, name=...) -> summary, fingerprint). Run
    directories are OUT/runs/<label>-<env>-s<seed> (so give each agent its own OUT), reused while their
    fingerprint matches. rlsuite's variants (`seeds_together`) train each as one population in this process.
    The others run one after another here, alternating seed by seed so machine drift hits every variant alike
    (workers 0, what the benchmarks time); or, where a variant says how to run in a process of its own (`fn.job`:
    SB3's), each seed in a fresh process, `workers` at a time, started before the population trains so both sides
    train at once (what `compare` does; rlsuite.experiments.jobs says how they stop). A run another process holds raises
    RunBusy at once, or with `skip_busy` once every other run is done (a benchmark grid's processes sharing a
    cell: one holding a run must not stop the other's work on the rest)."""

    results: dict[str, list[dict]] = {label: [] for label in variants}
    busy: list[str] = []
    pooled = [(label, seed) for seed in seeds for label, (fn, _) in variants.items()
              if hasattr(fn, "job")] if workers > 0 else []
    if not pooled:
        return _side_by_side(env_id, seeds, out, variants, force, on_result, skip_busy, results, busy, {})
    with JobPool("rlsuite.experiments.compare", workers) as pool:  # each seed a process of its own, beside us
        futures = {(label, seed): pool.submit({**variants[label][0].job, "seed": seed, "out": str(out),
                                               "name": run_name(label, env_id, seed), "force": force,
                                               "fingerprint": variants[label][1]}) for label, seed in pooled}
        return _side_by_side(env_id, seeds, out, variants, force, on_result, skip_busy, results, busy, futures)


def pooled_result(future, job_dir: Path) -> dict:
    """A pooled SB3 run's summary, as reuse_or_train would have returned it here (RunBusy and a one-line error
    raised again; a process that died leaves its output in the run's error.log)."""
    result = future.result()
    if not result.started:
        return {"status": "interrupted", "exit_code": 130, "run_dir": str(job_dir), "error": "not started"}
    if not result.ok:
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "error.log").write_text(result.output)
        raise UserError(f"{job_dir.name}: {result.why} (its output: {job_dir / 'error.log'})")
    answer = result.value
    if answer.get("busy"):
        raise RunBusy(answer["busy"])
    if answer.get("user_error"):
        raise UserError(answer["user_error"])
    return answer


def run_pooled_job(job: dict) -> dict:
    """One SB3 seed in its own process (rlsuite.experiments.jobs): its summary, or why it could not run."""
    fn = partial(train_baseline, job["agent"], job["env_id"], steps=job["steps"], overrides=job["overrides"],
                 seed=job["seed"], out=Path(job["out"]), progress=False)
    try:
        return runs.reuse_or_train(Path(job["out"]), job["name"], fn, job["force"], job["fingerprint"])
    except RunBusy as e:
        return {"busy": str(e)}
    except UserError as e:
        return {"user_error": str(e)}


def _side_by_side(env_id, seeds, out, variants, force, on_result, skip_busy, results, busy, futures):
    for label, (fn, stamp) in variants.items():  # rlsuite's seeds: together, as one population
        together = getattr(fn, "seeds_together", None)
        if together is None:
            continue
        names = [run_name(label, env_id, seed) for seed in seeds]
        pairs = list(zip(seeds, together(out, names, list(seeds), force=force, fingerprint=stamp)))
        held = [r["error"] for _, r in pairs if r.get("status") == "busy"]
        if held:
            if not skip_busy:
                raise RunBusy(held[0])
            busy += held
            pairs = [(seed, r) for seed, r in pairs if r.get("status") != "busy"]
        results[label] = [r for _, r in pairs]
        stopped = [r for r in results[label] if r.get("status") == "interrupted"]
        if stopped:  # Ctrl-C / SIGTERM: every member is checkpointed
            print(f"stopped; {len(stopped)} runs are checkpointed (e.g. {stopped[0]['run_dir']}): re-run the same "
                  "command to resume", file=sys.stderr, flush=True)
            sys.exit(stopped[0].get("exit_code") or 130)
        for seed, summary in pairs:
            if on_result:
                on_result(label, seed, summary)
    for seed in seeds:
        for label, (fn, stamp) in variants.items():
            if getattr(fn, "seeds_together", None) is not None:
                continue
            job = partial(fn, seed=seed, out=out, progress=False)
            try:
                if (label, seed) in futures:  # trained on the pool beside the population
                    results[label].append(pooled_result(futures[label, seed], out / "runs" / run_name(label, env_id, seed)))
                else:
                    results[label].append(runs.reuse_or_train(out, run_name(label, env_id, seed), job, force, stamp))
            except RunBusy as e:
                if not skip_busy:
                    raise
                busy.append(str(e))
                continue
            if results[label][-1].get("status") == "interrupted":  # Ctrl-C / SIGTERM: stop here, not at the next seed
                print(f"stopped; {results[label][-1]['run_dir']} is checkpointed: re-run the same command to resume",
                      file=sys.stderr, flush=True)
                sys.exit(results[label][-1].get("exit_code") or 130)
            if on_result:
                on_result(label, seed, results[label][-1])
    if busy:
        raise RunBusy(busy[0] + (f" (and {len(busy) - 1} more runs)" if len(busy) > 1 else ""))
    return results


def finished(env_id: str, seeds, out: Path, variants: dict[str, tuple[Callable, dict]]) -> dict[str, list[dict]] | None:
    """What side_by_side would return if every one of its runs has finished with these settings, else
    None; trains and touches nothing (a benchmark reports the cells another process is training)."""
    results = {label: [runs.finished_summary(out, run_name(label, env_id, seed), stamp) for seed in seeds]
               for label, (_, stamp) in variants.items()}
    return None if any(s is None for v in results.values() for s in v) else results


def ours(agent: str, env_id: str, steps: int | None = None, overrides: dict | None = None) -> tuple[Callable, dict]:
    """rlsuite's `agent` with its card (plus overrides), and the fingerprint of that experiment. Its seeds train
    together as one population (`seeds_together`)."""
    fn = partial(runs.train, agent, env_id, steps=steps, overrides=overrides)
    fn.seeds_together = partial(runs.reuse_or_train_seeds, agent=agent, env_id=env_id, steps=steps, overrides=overrides)
    return fn, runs.fingerprint(agent, env_id, steps, overrides)


def ours_and_sb3(agent: str, env_id: str, steps: int | None = None, overrides: dict | None = None,
                 sb3_overrides: dict | None = None) -> dict:
    """The two variants `rlsuite compare` runs: rlsuite with its card, SB3 with the zoo's values
    (`sb3_overrides`, in SB3's names, change the same settings on its side)."""
    sb3 = partial(train_baseline, agent, env_id, steps=steps, overrides=sb3_overrides)
    sb3.job = {"agent": agent, "env_id": env_id, "steps": steps, "overrides": sb3_overrides}  # for a pool's process
    return {"rlsuite": ours(agent, env_id, steps, overrides), "sb3": (sb3, baseline_fingerprint(agent, env_id, steps, sb3_overrides))}


def compare_root(out, agent: str, env_id: str, steps: int | None, overrides: dict, same_hparams: bool) -> Path:
    """OUT/runs/compare-AGENT-ENV[-hash of --steps/--set][-zoo]: different settings never reuse each other's runs."""
    tag = ""
    if steps is not None or overrides:
        tag = "-" + hashlib.sha1(json.dumps([steps, sorted(overrides.items())]).encode()).hexdigest()[:8]
    return Path(out) / "runs" / f"compare-{agent}-{env_id.replace('/', '-').replace(':', '-')}{tag}" \
        f"{'-zoo' if same_hparams else ''}"


def card_vs_zoo_notes(agent: str, env_id: str, overrides: dict, seeds, out, steps: int | None, sb3_set: dict) -> list[str]:
    """Where rlsuite's card (with --set) differs from the zoo's values SB3 trains with, said in the report: a
    steps/s ratio then compares two recipes as well as two implementations. With a finished --same-hparams
    comparison of the same seeds beside it, its ratio too (like for like)."""
    diff = {k: v for k, v in differences_from_zoo(agent, env_id).items() if k not in overrides}
    if not diff:
        return []
    fields = ", ".join(f"{k} {_short(card)} (zoo {_short(zoo)})" for k, (card, zoo) in diff.items())
    notes = [f"rlsuite's card differs from the zoo's values SB3 trains with in {len(diff)} field(s): {fields}. "
             "Its steps/s and wall-clock ratios compare the two recipes as well as the two implementations; "
             f"`rlsuite compare {agent} {env_id} --same-hparams` trains rlsuite on the zoo's values."]
    zoo_root = compare_root(out, agent, env_id, steps, overrides, True)
    same = finished(env_id, seeds, zoo_root, ours_and_sb3(agent, env_id, steps, {**zoo_as_rlsuite(agent, env_id),
                                                                                 **overrides}, sb3_set or None))
    if same is not None:
        r = ratio_lines(same["rlsuite"], same["sb3"], "rlsuite", "sb3")
        notes.append(f"At the zoo's values on the same seeds ({zoo_root.name}): rlsuite / sb3 median steps/s "
                     f"{r['steps_per_s']:.2f}×" + (f", per CPU second of training {r['steps_per_cpu_s']:.2f}×"
                                                   if r["steps_per_cpu_s"] else "") + ".")
    return notes


def _short(value) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def compare_report(agent: str, env_id: str, n_seeds: int, steps: int | None, overrides: dict, out, force: bool,
                   echo=print, workers: int = 0, live: str | None = "auto",
                   same_hparams: bool = False) -> tuple[list[str], Path]:
    """Run (or reuse) rlsuite and SB3 on seeds 0..n-1, write report.md + plots; return the table and path.
    workers: SB3's runs on a pool of that many processes while rlsuite's population trains (0: after it, here).
    same_hparams: rlsuite trains on the zoo's values (as SB3 does), so the ratios compare implementations only."""

    runs.prepare(agent, env_id, steps, overrides)  # an agent that cannot train on ENV fails before any line is printed
    root = compare_root(out, agent, env_id, steps, overrides, same_hparams)
    seeds = list(range(n_seeds))

    def progress(label, seed, summary):
        echo(f"{label} seed {seed}: final {summary['final_eval']['mean']:.1f}, {summary['steps_per_s']:,.0f} steps/s")

    # --set changes both sides where both have the setting (in SB3's name and form)
    hp = baseline_hyperparameters(agent, env_id)[0]
    sb3_set, ours_only = sb3_overrides_for(overrides, agent, hp)
    notes = differences(agent, env_id, overrides, ours_only)
    if same_hparams:
        notes.append("rlsuite trains on the zoo's values, as SB3 does (--same-hparams): the ratios compare the "
                     "implementations at equal hyperparameters.")
    for line in notes:
        echo(line)
    ours_set = {**zoo_as_rlsuite(agent, env_id), **overrides} if same_hparams else overrides
    variants = ours_and_sb3(agent, env_id, steps, ours_set, sb3_set or None)
    watched = [root / "runs" / run_name(label, env_id, seed) for label in variants for seed in seeds]
    with LiveRuns(watched, f"compare {agent} {env_id}", live):
        results = side_by_side(env_id, seeds, root, variants, force, progress, workers=workers)
    labels = {s["run_dir"]: f"{name} {agent}" for name, v in results.items() for s in v}
    command = f"rlsuite compare {agent} {env_id} --seeds {n_seeds}" + (f" --steps {steps}" if steps else "") + \
        "".join(f" --set {k}={v}" for k, v in overrides.items()) + (" --same-hparams" if same_hparams else "")
    if not same_hparams:  # said after training, so that a --same-hparams comparison finished meanwhile counts
        notes += card_vs_zoo_notes(agent, env_id, overrides, seeds, out, steps, sb3_set)
    sampled = sorted({label for label, summaries in results.items() for summary in summaries
                      if (summary.get("final_eval") or {}).get("deterministic") is False})
    if sampled:
        notes.append(f"Stochastic evaluation (eval_deterministic: false) for {', '.join(sampled)}: sampled actions, "
                     "not the protocol's deterministic policy; compare these figures only with other stochastic ones.")
    return write_report(results, labels, load_env_card(env_id).max_return, root / "report.md", root / "curves",
                        f"{agent} on {env_id}: rlsuite vs Stable-Baselines3", command, seeds,
                        f"{agent} on {env_id}: rlsuite vs SB3, mean and 95% band over {n_seeds} seeds",
                        [line for note in notes for line in (note, "")])


def differences(agent: str, env_id: str, overrides: dict, ours_only: list[str]) -> list[str]:
    """What differs between the two sides beyond the command: the --set keys SB3 has no setting for, and
    where the card leaves them on, rlsuite's orthogonal SAC/TD3 actor trunk (SB3 keeps nn.Linear's default)
    and SAC's exact squashing term (SB3 adds ε = 1e-6 inside its log)."""
    notes = []
    if ours_only:
        notes.append(f"rlsuite only (SB3 has no such setting): {', '.join(f'{k}={overrides[k]}' for k in ours_only)}")
    if agent in ("sac", "td3") and not {"actor_init", "tanh_eps"} <= set(overrides):
        cfg = resolve(agent, get_agent(agent).config_cls, env_id, overrides)[0]
        if "actor_init" not in overrides and cfg.actor_init != "torch":
            notes.append("rlsuite's actor trunk is orthogonally initialised, SB3's keeps nn.Linear's default; "
                         "--set actor_init=torch removes the difference")
        if agent == "sac" and "tanh_eps" not in overrides and cfg.tanh_eps != 1e-6:
            notes.append("rlsuite's log-prob uses the exact tanh correction, SB3's log(1 - tanh² + 1e-6), which stops "
                         "growing once an action saturates; --set tanh_eps=1e-6 removes the difference")
    return notes


def write_report(results: dict[str, list[dict]], run_labels: dict, max_return, report: Path, figure: Path,
                 title: str, command: str, seeds, plot_title: str, preamble: list[str] = ()) -> tuple[list[str], Path]:
    """The comparison report of two groups of finished runs (the first against the second): PREAMBLE (what
    differs between the sides beyond the command), the across-seed table with the ratios, the per-seed
    table and one plot; returns (table, report path)."""

    table = aggregate_table(results, max_return)
    first, second = list(results)[:2]
    r = ratio_lines(results[first], results[second], first, second)
    solvable = results[first][0].get("threshold") is not None and r["wall_to_solve"] == r["wall_to_solve"]
    table += [f"{first} / {second}: " + (f"median wall-to-solve {r['wall_to_solve']:.2f}×, " if solvable else "")
              + f"median steps/s {r['steps_per_s']:.2f}×"
              + (f" (per CPU second of training: {r['steps_per_cpu_s']:.2f}×)" if r["steps_per_cpu_s"] else "")
              + (f", median CPU-to-solve {r['cpu_to_solve']:.2f}×" if r["cpu_to_solve"] else ""),
              "", iqm_verdict(results[first], results[second], first, second)]
    report.parent.mkdir(parents=True, exist_ok=True)
    plot = plot_curves(list(run_labels), figure, labels=run_labels, title=plot_title).paths[0]
    lines = (header(title, command, seeds, episodes=final_episodes(results)) + list(preamble) + table + [""]
             + per_seed_table(results)
             + [f"![curves]({plot.name})", ""])
    report.write_text("\n".join(lines) + "\n")
    return table, report


# ---------------------------------------------------------------------------------------------
# `rlsuite compare GROUP GROUP ...`: runs that already exist (trial runs of a study, sweeps, benchmarks)
def run_groups(specs: list[str]) -> dict[str, list[Path]]:
    """'[LABEL=]PATH_OR_GLOB' -> label: run directories. A path is a run or a folder of runs (as `plot`
    takes them); a quoted glob such as 'runs/dqn-CartPole-v1-10dff62a51-s*' picks runs by name."""

    groups: dict[str, list[Path]] = {}
    for spec in specs:
        label, sep, pattern = spec.partition("=")
        if not sep or "/" in label:  # no label, or the '=' belongs to the path
            label, pattern = spec, spec
        if not label.strip() or not pattern.strip():
            raise UserError(f"{spec!r}: give a group as LABEL=PATH (or just PATH), e.g. best='runs/x-*'")
        if label in groups:
            raise UserError(f"the label {label!r} is given twice; each group needs its own")
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise UserError(f"{pattern} matches nothing")
        groups[label] = expand_run_dirs(matches)
    return groups


def finished_summary(run_dir: Path) -> dict:
    """summary.json of a finished run; one line naming the run and what to do otherwise."""

    path = Path(run_dir) / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        status = (read_status(run_dir) or {}).get("status", "unknown")
        raise UserError(f"{run_dir} has not finished (status: {status}); compare takes finished runs: resume it "
                        f"with `rlsuite train --resume {run_dir}`, or leave it out") from None
    except ValueError:
        raise UserError(f"{path} is damaged (not JSON); re-run that run or leave it out") from None
    if not isinstance(summary, dict):
        raise UserError(f"{path} is damaged (not a JSON object); re-run that run or leave it out")
    if summary.get("agent") == "supervised" or "final_eval" not in summary:
        raise UserError(f"{run_dir} is a supervised run (a classifier's test accuracy, no returns); compare takes RL "
                        "runs: leave it out, and see a classifier's accuracy with `rlsuite eval` or `rlsuite runs`")
    mean = (summary.get("final_eval") or {}).get("mean") if isinstance(summary.get("final_eval"), dict) else None
    if not isinstance(mean, (int, float)) or isinstance(mean, bool) or not math.isfinite(mean):
        raise UserError(f"{path}: the final evaluation is {mean!r}, not a finite number; the file is damaged: "
                        "re-run that run or leave it out")
    return summary


def groups_by_fields(dirs: list[Path], fields: list[str]) -> dict[str, list[Path]]:
    """The runs split by the values of FIELDS (any hyperparameter or env-card field, agent, implementation):
    label 'lr=0.001 n_steps=16' -> its run directories."""
    values = {d: run_fields(read_run_config(d)) for d in dirs}
    known = {k for v in values.values() for k in v}
    fields = [field_name(f, known) for f in fields]
    for f in fields:
        if f not in known:
            raise UserError(f"--group {f!r} is not a field of these runs{close_matches(f, known)}")
    groups: dict[str, list[Path]] = {}
    for d, v in values.items():  # the implementation and agent stay apart, as in plot
        label = " ".join([f"{v['implementation']} {v['agent']}", *(f"{f}={v.get(f, '-')}" for f in fields)])
        groups.setdefault(label, []).append(d)
    return groups


def compare_runs(specs: list[str], output: str | Path, command: str, group_by: list[str] | None = None
                 ) -> tuple[list[str], Path]:
    """Finished runs, grouped (by their labels, or by the values of GROUP_BY's fields), on one table, one per-seed
    table and one plot, as `compare` reports its own."""

    output = Path(output)
    if output.suffix != ".md" or output.is_dir():
        raise UserError(f"-o {output} must be a markdown path, e.g. -o compare.md")
    groups = run_groups(specs)
    if group_by:
        groups = groups_by_fields([d for dirs in groups.values() for d in dirs], group_by)
    if len(groups) < 2:
        raise UserError("give at least two groups of runs to compare, e.g. best='runs/x-*' card='runs/y-*'"
                        + (f"; these runs share one value of {', '.join(group_by)}" if group_by else ""))
    results = {label: [finished_summary(d) for d in dirs] for label, dirs in groups.items()}
    envs = sorted({s["env_id"] for v in results.values() for s in v})
    if len(envs) > 1:
        raise UserError(f"these runs are on {len(envs)} envs ({', '.join(envs)}); compare one env at a time")
    try:
        max_return = load_env_card(envs[0]).max_return
    except Exception:  # a run of an env whose card is gone: the table does without the max-return column
        max_return = None
    labels = list(results)
    run_labels = {str(d): label for label, dirs in groups.items() for d in dirs}
    seeds = sorted({s["seed"] for v in results.values() for s in v})
    return write_report(results, run_labels, max_return, output, output.with_suffix(".png"),
                        f"{envs[0]}: {' vs '.join(labels)}", command, seeds,
                        f"{envs[0]}: {' vs '.join(labels)}, mean and 95% band")


def differences_from_zoo(agent: str, env_id: str) -> dict:
    """{field: (rlsuite card, zoo)} where rlsuite's resolved card differs from SB3's zoo values expressed as
    rlsuite settings (the budget aside): empty means the two run the same hyperparameters."""
    card = to_data(runs.prepare(agent, env_id)[1])
    same_as_zoo = to_data(runs.prepare(agent, env_id, overrides=zoo_as_rlsuite(agent, env_id))[1])
    return {k: (card[k], same_as_zoo[k]) for k in card if k != "total_steps" and card[k] != same_as_zoo[k]}


if __name__ == "__main__" and sys.argv[1:] == ["--job"]:  # a pooled SB3 seed's process (rlsuite.experiments.jobs)
    job_main(run_pooled_job)
