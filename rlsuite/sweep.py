"""Multi-seed runs and hyperparameter grids: seeds × `--set` alternatives -> runs, executed on a local
process pool (default) or as Ray tasks on a cluster. Both backends write the same layout:
OUT/runs/sweep-<agent>-<env>/runs/<agent>-<env>-<key=value...>-s<seed>. Finished runs are skipped on a
re-run; a run that crashes is reported with its log and the others go on."""

from __future__ import annotations

import itertools
import socket
import traceback
import typing
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
from multiprocessing import get_context
from pathlib import Path

from rlsuite.errors import UserError


def expand_grid(agent: str, items: list[str]) -> list[dict]:
    """['lr=1e-3,3e-3', 'hidden=64,64|128,128'] -> the cross product of the alternatives.

    Alternatives are separated by ',' — except for list fields such as `hidden`, whose values contain
    commas themselves: there '|' separates the alternatives."""
    from rlsuite.agents import get_agent
    from rlsuite.cards import coerce, parse_overrides

    config_cls = get_agent(agent).config_cls
    hints = typing.get_type_hints(config_cls)
    axes = []
    for key, text in parse_overrides(items).items():
        if key not in hints:
            coerce(config_cls, key, None)  # raises: unknown key, naming the close matches
        is_list = typing.get_origin(hints[key]) is tuple
        values = [v for v in text.split("|" if is_list else ",") if v != ""]
        for v in values:
            coerce(config_cls, key, v)  # a bad value fails now, not in the middle of the sweep
        axes.append([(key, v) for v in values])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def _run_name(agent: str, env_id: str, overrides: dict, seed: int) -> str:
    parts = [agent, env_id.replace("/", "-").replace(":", "-")]
    parts += [f"{k}={v}".replace("/", "-").replace(",", "_").replace(" ", "") for k, v in overrides.items()]
    return "-".join(parts) + f"-s{seed}"


def run_job(job: dict) -> dict:
    """Executed in a worker (process or Ray task): one run, reused when already finished."""
    import torch

    from rlsuite import runs

    torch.set_num_threads(1)
    root, name = Path(job["root"]), job["name"]
    try:
        summary = runs.reuse_or_train(root, name, partial(runs.train, job["agent"], job["env_id"], seed=job["seed"],
                                                          steps=job["steps"], overrides=job["overrides"], out=root,
                                                          progress=False))
        return {"name": name, "status": summary.get("status", "complete"), "final": summary.get("final_eval", {}).get("mean"),
                "run_dir": summary["run_dir"]}
    except BaseException as e:  # noqa: BLE001 - a failing run is reported; the sweep goes on
        log = root / "runs" / name / "error.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        return {"name": name, "status": "failed", "error": f"{type(e).__name__}: {e}".splitlines()[0], "log": str(log)}


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


def _run_ray(jobs: list[dict], workers: int, address: str | None, report) -> list[dict]:
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray; pip install 'rlsuite[ray]'") from None
    if address and address != "auto":
        _check_ray_address(address)
    try:
        if address:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UserError(f"cannot reach a Ray cluster at {address or 'a new local instance'} "
                        f"({str(e).splitlines()[0]}); start one with `ray start --head`") from None
    try:
        task = ray.remote(num_cpus=1)(run_job)
        pending = {task.remote(job): job for job in jobs}
        results = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                pending.pop(ref)
                results.append(ray.get(ref))
                report(results[-1])
        return results
    finally:
        ray.shutdown()


def sweep(agent: str, env_id: str, seeds: int, sets: list[str], workers: int = 2, backend: str = "local",
          address: str | None = None, steps: int | None = None, out="results", report=print) -> list[dict]:
    from rlsuite.runs import prepare

    if seeds <= 0 or workers <= 0:
        raise UserError("--seeds and --workers must be positive")
    grid = expand_grid(agent, sets)
    for overrides in grid:  # every combination must make a valid config before anything starts
        prepare(agent, env_id, steps, overrides)
    root = Path(out) / "runs" / f"sweep-{agent}-{env_id.replace('/', '-').replace(':', '-')}"
    jobs = [{"root": str(root), "name": _run_name(agent, env_id, o, s), "agent": agent, "env_id": env_id,
             "seed": s, "steps": steps, "overrides": o} for o in grid for s in range(seeds)]
    if backend == "ray":
        return _run_ray(jobs, workers, address, report)
    if backend != "local":
        raise UserError(f"unknown backend {backend!r}; use local or ray")
    results = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        for future in as_completed([pool.submit(run_job, job) for job in jobs]):
            results.append(future.result())
            report(results[-1])
    return results
