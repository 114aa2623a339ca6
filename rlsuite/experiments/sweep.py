"""Multi-seed runs and hyperparameter grids: seeds × `--set` alternatives -> runs. Each grid point's seeds
train together as one population (one job), executed locally (one subprocess per grid point, `workers` at
a time) or as Ray tasks on a cluster. Both backends write the same layout, one run directory per seed:
OUT/runs/sweep-<agent>-<env>/runs/<agent>-<env>-<key=value...>-s<seed>. On a re-run finished runs are
reused and interrupted ones resumed; a job that crashes or is killed is reported with its log (its grid
point's runs fail) and the others go on; a run another live process is training (a second sweep on the
same --out) is left to it. The sweep ends with the across-seed table of `compare`, one row per grid point."""

from __future__ import annotations

import hashlib
import itertools
import json
import socket
import sys
import traceback
import typing
from concurrent.futures import as_completed
from pathlib import Path

import torch

from rlsuite import runs
from rlsuite.config.cards import load_env_card
from rlsuite.config.schema import coerce
from rlsuite.core.errors import UserError
from rlsuite.experiments.jobs import JobPool, JobResult, job_main
from rlsuite.experiments.plots import plot_curves, usable_runs
from rlsuite.experiments.report import aggregate_table, header
from rlsuite.registry import get_agent
from rlsuite.run.live import LiveRuns
from rlsuite.run.rundir import RunBusy, atomic_write_text
from rlsuite.runs import prepare


def expand_grid(agent: str, items: list[str]) -> list[dict]:
    """['lr=1e-3,3e-3', 'hidden=64,64|128,128'] -> the cross product of the alternatives.

    Alternatives are separated by ',' — except for list fields such as `hidden`, whose values contain
    commas themselves: there '|' separates the alternatives. A key given twice is an error (the second
    would silently replace the first): put all its values in one --set."""

    config_cls = get_agent(agent, kind="rl").config_cls
    hints = typing.get_type_hints(config_cls)
    axes, seen = [], set()
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set {item!r} is not key=value; write e.g. --set lr=1e-3,3e-4")
        if key in seen:
            raise UserError(f"--set {key} is given twice; list every value in one --set, e.g. --set {key}=A,B")
        seen.add(key)
        if key not in hints:
            coerce(config_cls, key, None)  # raises: unknown key, naming the close matches
        is_list = typing.get_origin(hints[key]) is tuple
        values = [v.strip() for v in text.split("|" if is_list else ",") if v.strip() != ""]
        if not values:
            raise UserError(f"--set {key}= has no values; give e.g. --set {key}=A,B")
        for v in values:
            coerce(config_cls, key, v)  # a bad value fails now, not in the middle of the sweep
        axes.append([(key, v) for v in values])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def _run_name(agent: str, env_id: str, overrides: dict, seed: int) -> str:
    """AGENT-ENV-k=v-...-sSEED; a grid point too long for a folder name (255 bytes) is named by its hash."""
    parts = [agent, env_id.replace("/", "-").replace(":", "-")]
    parts += [f"{k}={v}".replace("/", "-").replace(",", "_").replace(" ", "") for k, v in overrides.items()]
    name = "-".join(parts)
    if len(name.encode("utf-8")) > 200:
        digest = hashlib.sha1(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:12]
        name = f"{'-'.join(parts[:2])[:150]}-grid{digest}"
    return name + f"-s{seed}"


def point_label(overrides: dict, grid: list[dict]) -> str:
    """A grid point by the values of the axes that vary (lr=0.001), the fixed --set values left to the command."""
    varying = [k for k in overrides if len({json.dumps(o.get(k), default=str) for o in grid}) > 1]
    return " ".join(f"{k}={overrides[k]}" for k in (varying or overrides)) or "card"


def sweep_root(out, agent: str, env_id: str) -> Path:
    return Path(out) / "runs" / f"sweep-{agent}-{env_id.replace('/', '-').replace(':', '-')}"


def write_report(results: list[dict], grid: list[dict], agent: str, env_id: str, command: str, out) -> Path | None:
    """ROOT/report.md (the across-seed table, one row per grid point) and ROOT/curves.png (one curve per grid
    point), like compare's; None when no run finished."""
    root = sweep_root(out, agent, env_id)
    labels = {}
    for overrides in grid:
        label = point_label(overrides, grid)
        prefix = _run_name(agent, env_id, overrides, 0).removesuffix("-s0") + "-s"
        for r in results:
            if r["status"] == "complete" and r["name"].startswith(prefix) and r["name"][len(prefix):].isdigit():
                labels[str(r["run_dir"])] = label
    table = summary_table(results, grid, agent, env_id)
    if not table or not labels:
        return None
    plottable, skipped = usable_runs([Path(d) for d in labels])
    try:
        figure = plot_curves(plottable, root / "curves", labels={str(d): labels[str(d)] for d in plottable},
                             title=f"sweep {agent} on {env_id}").paths[0]
        picture = [f"![curves]({figure.name})"]
    except UserError as e:  # e.g. every finished run's curve holds NaN: the table still stands
        picture = [f"No curves: {e}"]
    lines = header(f"Sweep: {agent} on {env_id}", command, None)
    lines += [f"Grid: {len(grid)} point(s); each row is one grid point, its seeds aggregated (`--set` values over the "
              "card; the axes that vary name the row).", "", *table, "", *picture, "",
              *[f"- not drawn: {why}" for why in skipped]]
    failed = [r for r in results if r["status"] == "failed"]
    if failed:
        lines += ["Failed runs (not in the table):", "", *[f"- {r['name']}: {r['error']}" for r in failed], ""]
    path = root / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def connect_ray(address: str | None, num_cpus: int | None):
    """The `ray` module, connected to the cluster at ADDRESS ('auto' or host:port) or to a new local
    instance with NUM_CPUS; every way this fails is one line."""
    try:
        import ray  # optional extra (ray)
    except ImportError:
        raise UserError("--backend ray needs Ray; pip install 'rlsuite[ray]'") from None
    if address and address != "auto":
        _check_ray_address(address)
    try:
        if address:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UserError(f"cannot reach a Ray cluster at {address or 'a new local instance'} "
                        f"({str(e).splitlines()[0]}); start one with `ray start --head`") from None
    return ray


def _check_ray_address(address: str, timeout: float = 3.0) -> None:
    """Fail within seconds when a host:port address does not answer (ray.init would wait much longer)."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"Ray address {address!r} is not host:port (or 'auto')")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise UserError(f"Ray address {address} does not answer ({e.strerror or e}); start the cluster or fix --address") from None


def run_job(job: dict) -> list[dict]:
    """One grid point's seeds (in a subprocess or a Ray task), as one population: finished runs reused,
    interrupted ones resumed. One result per run."""

    torch.set_num_threads(1)
    root, names = Path(job["root"]), job["names"]
    try:
        summaries = runs.reuse_or_train_seeds(root, names, job["seeds"], job["agent"], job["env_id"], steps=job["steps"],
                                              overrides=job["overrides"],
                                              fingerprint=runs.fingerprint(job["agent"], job["env_id"], job["steps"],
                                                                           job["overrides"]))
        results = []
        for name, s in zip(names, summaries):
            if s.get("status") == "busy":
                results.append({"name": name, "status": "busy", "error": s["error"], "final": None})
                continue
            result = {"name": name, "status": s.get("status", "complete"), "final": s.get("final_eval", {}).get("mean"),
                      "run_dir": s["run_dir"]}
            if s.get("status") == "failed":  # a member that failed alone (e.g. diverged) while the others trained on
                log = Path(s["run_dir"]) / "error.log"
                log.write_text(s["error"] + "\n")
                result.update(error=s["error"], log=str(log))
            results.append(result)
        return results
    except RunBusy as e:
        return [{"name": name, "status": "busy", "error": str(e), "final": None} for name in names]
    except BaseException as e:  # noqa: BLE001 - a failing grid point is reported; the sweep goes on
        return _failed(job, f"{type(e).__name__}: {e}".splitlines()[0], traceback.format_exc())


def _failed(job: dict, error: str, log_text: str) -> list[dict]:
    """Every run of a job that failed as a whole, each with the job's log."""
    out = []
    for name in job["names"]:
        log = Path(job["root"]) / "runs" / name / "error.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(log_text)
        out.append({"name": name, "status": "failed", "error": error, "log": str(log)})
    return out


def _job_results(job: dict, result: JobResult) -> list[dict]:
    """One result per run of a grid point's job, from its process's answer."""
    if not result.started:
        return [{"name": name, "status": "interrupted", "error": "not started: the sweep was stopped"}
                for name in job["names"]]
    return result.value if result.ok else _failed(job, result.why, result.output)


def _run_ray(jobs: list[dict], workers: int, address: str | None, report) -> list[dict]:
    ray = connect_ray(address, workers)
    try:
        task = ray.remote(num_cpus=1)(run_job)
        pending = {task.remote(job): job for job in jobs}
        results = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    finished = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a worker that died (e.g. kill -9) fails its grid point only
                    finished = [{"name": name, "status": "failed", "log": "(Ray worker log)",
                                 "error": f"the Ray task died: {type(e).__name__}: {str(e).splitlines()[0][:120]}"}
                                for name in job["names"]]
                for result in finished:
                    results.append(result)
                    report(result)
        return results
    finally:
        ray.shutdown()


def sweep(agent: str, env_id: str, seeds: int, sets: list[str], workers: int = 2, backend: str = "local",
          address: str | None = None, steps: int | None = None, out=".", report=print,
          live: str | None = "auto") -> list[dict]:
    """Every grid point's seeds as one job (a population) on `workers` local processes or Ray tasks; `report`
    gets each run's result as it finishes, and `live` shows the runs in flight (rlsuite.run.live)."""

    if not 0 < seeds <= 10_000 or not 0 < workers <= 1024:
        raise UserError(f"--seeds must be in [1, 10000] and --workers in [1, 1024], got {seeds} and {workers}")
    if backend not in ("local", "ray"):  # before anything is written: a refused sweep leaves no folder
        raise UserError(f"unknown backend {backend!r}; use local or ray")
    grid = expand_grid(agent, sets)
    for overrides in grid:  # every combination must make a valid config before anything starts
        prepare(agent, env_id, steps, overrides)
    root = sweep_root(out, agent, env_id)
    try:
        (root / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {root / 'runs'} ({e.strerror}); choose a writable --out") from None
    jobs = [{"root": str(root), "names": [_run_name(agent, env_id, o, s) for s in range(seeds)], "agent": agent,
             "env_id": env_id, "seeds": list(range(seeds)), "steps": steps, "overrides": o} for o in grid]
    watched = [root / "runs" / name for job in jobs for name in job["names"]]
    with LiveRuns(watched, f"sweep {agent} {env_id}", live):
        return _run_ray(jobs, workers, address, report) if backend == "ray" else _run_local(jobs, workers, report)


def _run_local(jobs: list[dict], workers: int, report) -> list[dict]:
    """Each grid point in a process of its own (rlsuite.experiments.jobs): a crash or a kill -9 costs that grid
    point only; a stop starts no other, and a SIGTERM reaches the running ones, which stop at a checkpoint."""
    results = []
    with JobPool("rlsuite.experiments.sweep", workers) as pool:
        futures = {pool.submit(job): job for job in jobs}
        for future in as_completed(futures):
            for result in _job_results(futures[future], future.result()):
                results.append(result)
                report(result)
    return results


def summary_table(results: list[dict], grid: list[dict], agent: str, env_id: str) -> list[str]:
    """The across-seed table of `compare` (success, IQM with CI, medians), one row per grid point."""

    by_point: dict[str, list[dict]] = {}
    for overrides in grid:
        label = point_label(overrides, grid)
        prefix = _run_name(agent, env_id, overrides, 0).removesuffix("-s0") + "-s"
        for r in results:
            if r["status"] == "complete" and r["name"].startswith(prefix) and r["name"][len(prefix):].isdigit():
                path = Path(r["run_dir"]) / "summary.json"
                if path.exists():
                    by_point.setdefault(label, []).append(json.loads(path.read_text()))
    return aggregate_table(by_point, load_env_card(env_id).max_return) if by_point else []


if __name__ == "__main__" and sys.argv[1:] == ["--job"]:  # a grid point's process (rlsuite.experiments.jobs)
    job_main(run_job)
