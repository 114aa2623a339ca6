"""The `rlsuite` command line: parse, call the library, print. No training logic lives here.

Each command imports the library where it runs: the library loads torch (seconds), which `rlsuite --help` and
a mistyped command should not wait for. The layers below are imported at their modules' tops as usual."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import shlex
import signal
import sys
from pathlib import Path


def _exit_on_sigterm(signum, frame):
    raise SystemExit(143)


# Until a run installs its own handler (checkpoint, then exit 143), a SIGTERM during startup exits 143
# quietly. Installed when the command line loads (this module is its entry point), before click and
# torch are imported, so that only the interpreter's own start is left to the default action.
signal.signal(signal.SIGTERM, _exit_on_sigterm)

# MuJoCo renders headless through EGL when there is no display (before mujoco is imported); a user's own
# MUJOCO_GL (osmesa, glfw) wins.
import glob  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import click  # noqa: E402

from rlsuite.core.errors import Aborted, UserError
from rlsuite.run.rundir import disk_error, safe_name


def friendly(fn):
    """Bad input and failed runs end in one line on stderr and exit code 1, never a traceback; an
    abort by a second Ctrl-C exits 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            raise click.ClickException(str(e).replace("\n", " ")) from None
        except Aborted as e:  # a second signal while runs were stopping
            where = e.run_dirs[0] if len(e.run_dirs) == 1 else f"each of the {len(e.run_dirs)} runs under {Path(e.run_dirs[0]).parent}"
            click.echo(f"aborted by a second {e.signal_name}; {where} keeps its last checkpoint "
                       f"(resume with rlsuite train --resume {e.run_dirs[0] if len(e.run_dirs) == 1 else 'RUN_DIR'})", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("aborted; the run keeps its last checkpoint (resume with rlsuite train --resume RUN_DIR)", err=True)
            sys.exit(130)
        except MemoryError:
            raise click.ClickException("out of memory; lower buffer_size, num_envs or batch_size") from None
        except OSError as e:
            if e.errno != errno.ENAMETOOLONG:
                raise
            raise click.ClickException(f"a file name is too long for the file system ({e.filename}); choose a "
                                       "shorter --out, run name or path (255 bytes per folder name at most)") from None

    return wrapper


class _UsageInOneLine(click.ClickException):
    exit_code = 2  # click's code for a usage error


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _one_line_usage(make_context):
    """Usage errors (a misspelt option, a missing argument, a bad value) are one line, like every other error,
    pointing at the command's --help, instead of click's usage block."""

    @functools.wraps(make_context)
    def wrapper(self, info_name, args, parent=None, **extra):
        try:
            return make_context(self, info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            if isinstance(e, _NO_ARGS_IS_HELP):  # `rlsuite` alone prints its help (click >= 8.2 raises it)
                raise
            path = e.ctx.command_path if e.ctx is not None else " ".join(filter(None, [
                parent.command_path if parent is not None else None, info_name]))
            raise _UsageInOneLine(f"{e.format_message()} (see '{path} --help')".replace("\n", " ")) from None

    return wrapper


class _Command(click.Command):
    make_context = _one_line_usage(click.Command.make_context)


class _Group(click.Group):
    make_context = _one_line_usage(click.Group.make_context)

    def resolve_command(self, ctx, args):  # a misspelt command
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as e:
            raise _UsageInOneLine(f"{e.format_message()} (see '{ctx.command_path} --help')") from None
    command_class = _Command
    group_class = type  # a subgroup is of the same class as its parent


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rlsuite")
@click.option("--trust-imports", is_flag=True,
              help="let run directories import the modules their env ids and wrappers name ('package.module:...'); "
                   "without it such a run directory is refused, as it could run code")
def main(trust_imports):
    """rlsuite: readable RL agents, measured against Stable-Baselines3."""
    if trust_imports:
        os.environ["RLSUITE_TRUSTED_MODULES"] = "*"  # config.cards.TRUST_VARIABLE; child processes inherit it


def _to_environment(variable: str):
    """A click callback that puts the option's value in the environment, where the runs (and the child processes
    of sweep, compare and tune) read it."""
    def callback(ctx, param, value):
        if value is not None and not value.strip():
            raise click.BadParameter("is empty; give a name, or leave the option out")
        if value:
            os.environ[variable] = value
        return value
    return callback


def tracking_options(fn):
    """--track wandb and its W&B settings (rlsuite.run.tracking)."""
    fn = click.option("--wandb-entity", default=None, expose_value=False, callback=_to_environment("WANDB_ENTITY"),
                      help="the W&B entity (team or user; default: yours)")(fn)
    fn = click.option("--wandb-project", default=None, expose_value=False, callback=_to_environment("WANDB_PROJECT"),
                      help="the W&B project (default: rlsuite)")(fn)
    fn = click.option("--track", type=click.Choice(["wandb"]), default=None, expose_value=False,
                      callback=_to_environment("RLSUITE_TRACK"),
                      help="also log every run to Weights & Biases (the wandb extra; WANDB_MODE=offline keeps it on disk)")(fn)
    return fn


def _check_out(ctx, param, value):
    """--out must name a folder (an empty string would silently mean the current directory)."""
    if value is not None and not str(value).strip():
        raise click.ClickException("--out is empty; give a folder, e.g. --out .")
    return value


def _print_result(result: dict) -> None:
    """The end of a run in three lines; a run stopped by a signal exits 130 (SIGINT) or 143 (SIGTERM)."""
    if result.get("status") == "interrupted":
        why = f" by {result['signal']}" if result.get("signal") else ""
        click.echo(f"stopped{why} at step {result['step']:,}; checkpoint saved.\n"
                   f"resume with: rlsuite train --resume {result['run_dir']}")
        if result.get("exit_code"):
            sys.exit(result["exit_code"])
        return
    final = result["final_eval"]
    solved = ""
    if result.get("threshold") is not None:
        solved = (f"  threshold {result['threshold']:g}: "
                  + ("solved" if result["stays_solved"] else "solved then collapsed" if result["solved"] else "not solved")
                  + (f" (first at {result['steps_to_solve']:,} steps, {result['wall_to_solve']:.1f} s)" if result["solved"] else ""))
    episodes = f"{final['episodes']} episode{'s' if final['episodes'] != 1 else ''}"
    click.echo(f"final evaluation: {final['mean']:.1f} ± {final['std']:.1f} over {episodes}{solved}")
    click.echo(f"{result['steps']:,} steps in {result['wall_s']:.1f} s ({result['steps_per_s']:,.0f} steps/s)")
    click.echo(f"run directory: {Path(result['run_dir']).absolute()}")  # the same form after a resume


@main.command(short_help="Train AGENT on ENV, or resume a run (--resume)")
@click.argument("agent", required=False)
@click.argument("env_id", metavar="ENV", required=False)
@click.option("--seed", type=int, default=0, show_default=True, help="seed for python, numpy, torch and the envs")
@click.option("--seeds", "seeds_text", default=None, metavar="0-9|0,3,7",
              help="several seeds, each its own run directory, trained together in this process as one population")
@click.option("--steps", type=int, default=None, help="environment steps (default: the card's total_steps)")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
@click.option("--out", default=".", show_default=True, callback=_check_out, help="runs go to OUT/runs/<run>")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a card field (repeatable)")
@click.option("--env-kwargs", "env_kwargs", multiple=True, metavar="KEY=VALUE",
              help="an env constructor argument over the env card's make_kwargs, e.g. repeat_action_probability=0")
@click.option("--env-backend", type=click.Choice(["gymnasium", "torch"]), default=None,
              help="training envs: gymnasium's classes, or torch: the same classic-control dynamics batched "
                   "(default: the env card's backend)")
@click.option("--resume", "resume_dir", type=click.Path(), default=None,
              help="continue a stopped run directory (with --steps N: train it on to N steps in total)")
@click.option("--quiet", is_flag=True, help="no progress output")
@tracking_options
@friendly
def train(agent, env_id, seed, seeds_text, steps, device, out, overrides, env_kwargs, env_backend, resume_dir, quiet):
    """Train AGENT on ENV (any Gymnasium id, or package.module:EnvId) with its tuned card.

    \b
    Examples:
      rlsuite train dqn CartPole-v1
      rlsuite train dqn Acrobot-v1 --seed 3 --set lr=5e-4 --set double=true
      rlsuite train ppo CartPole-v1 --seeds 0-9
      rlsuite train --resume runs/dqn-CartPole-v1-s0-...
    """
    from rlsuite import runs
    from rlsuite.config.cards import parse_env_kwargs
    from rlsuite.config.schema import parse_overrides  # the library loads torch: imported when the command runs

    progress = not quiet  # a bar on a terminal, plain periodic lines in logs
    if resume_dir:
        given = [f"--{name}" for name in ("seed", "out")
                 if click.get_current_context().get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise UserError(f"--resume continues a run in its own directory with its own seed; drop {' and '.join(given)}")
        if agent or env_id or overrides or env_kwargs or env_backend or seeds_text:
            raise UserError("--resume continues a run with its saved config; drop AGENT, ENV, --set, --env-kwargs "
                            "and --env-backend "
                            "(--steps N extends its budget)")
        result = runs.resume(resume_dir, progress=progress, device=None if device == "auto" else device, steps=steps)
    else:
        if not agent or not env_id:
            raise UserError("give an agent and an environment, e.g. `rlsuite train dqn CartPole-v1` (see `rlsuite list`)")
        options = dict(steps=steps, overrides=parse_overrides(overrides), out=out, device=device, progress=progress,
                       env_kwargs=parse_env_kwargs(env_kwargs), env_changes={"backend": env_backend} if env_backend else None)
        if seeds_text is not None:
            if click.get_current_context().get_parameter_source("seed") == click.core.ParameterSource.COMMANDLINE:
                raise UserError("give --seed S (one run) or --seeds LIST (several), not both")
            results = runs.train_seeds(agent, env_id, runs.parse_seeds(seeds_text), **options)
            _print_seed_table(results)
            return
        result = runs.train(agent, env_id, seed=seed, **options)
    _print_result(result)


def _print_seed_table(results: list[dict]) -> None:
    """One line per seed: final evaluation, solved, steps/s, run directory; a non-zero exit if any did not finish."""
    click.echo(f"{'seed':>6}  {'status':<11}  {'final eval':>16}  {'solved':<8}  {'steps/s':>8}  run directory")
    for r in results:
        seed = r.get("seed", "?")
        if r.get("status") == "complete":
            final = f"{r['final_eval']['mean']:.1f} ± {r['final_eval']['std']:.1f}"
            solved = ("-" if r.get("threshold") is None  # an env without a threshold (MinAtar, Atari): scores only
                      else "stays" if r.get("stays_solved") else "then not" if r.get("solved") else "no")
            sps = f"{r['steps_per_s']:,.0f}" if r.get("steps_per_s") else "-"
        else:
            final, solved, sps = "-", "-", "-"
        click.echo(f"{seed:>6}  {r.get('status', '?'):<11}  {final:>16}  {solved:<8}  {sps:>8}  {Path(r['run_dir']).absolute()}")
    failed = [r for r in results if r.get("status") != "complete"]
    if failed:
        codes = [r.get("exit_code", 1) for r in failed]
        raise SystemExit(max(codes) or 1)


@main.command("runs", short_help="List runs with their status and result")
@click.argument("folder", default="runs", required=False, type=click.Path())
@click.option("--agent", default=None, help="only this agent's runs")
@click.option("--env", default=None, help="only runs of this env (or of ids containing it, e.g. CartPole)")
@click.option("--status", type=click.Choice(["running", "interrupted", "failed", "complete", "unknown"]), default=None)
@friendly
def runs_cmd(folder, agent, env, status):
    """List the runs under FOLDER (default ./runs, where train puts them), oldest first, with their status and result.

    \b
    Any command that takes a run directory also takes `latest` (the run started last under ./runs) or the start of
    a run's name: rlsuite eval latest; rlsuite train --resume ppo-CartPole-v1-s0-2026
    """
    from rlsuite.runs import list_runs  # the library loads torch: imported when the command runs

    if not Path(folder).is_dir():
        raise UserError(f"{folder} is not a folder; give the folder runs were written to (train's --out, then runs/)")
    rows = list_runs(folder, agent, env, status)
    if not rows:
        click.echo(f"no runs under {folder}" + (" match the filters" if agent or env or status else ""))
        return
    head = f"{'started':<19}  {'status':<11}  {'agent':<9} {'env':<22} {'seed':>5}  {'steps':>10}  {'final':>9}  run"
    click.echo(head)
    for r in rows:
        impl = "" if r["implementation"] == "rlsuite" else f" ({r['implementation']})"
        final = "-" if r["final"] is None else f"{r['final']:.4g}"
        steps = "-" if r["step"] is None else f"{r['step']:,}"
        click.echo(f"{r['created'][:19]:<19}  {r['status']:<11}  {r['agent'] + impl:<9} {str(r['env_id'])[:22]:<22} "
                   f"{r['seed']:>5}  {steps:>10}  {final:>9}  {r['run_dir']}")
    click.echo(f"{len(rows)} run{'s' if len(rows) != 1 else ''}")


@main.command("eval", short_help="Re-evaluate a run's saved agent or classifier")
@click.argument("run_dir", type=click.Path())
@click.option("--episodes", type=int, default=None, help="episodes (default: the run's final_eval_episodes)")
@click.option("--seed", type=int, default=None, help="seed episode i with SEED + i (default: the seeds the run's own evaluation used)")
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("--video", "video_dir", type=click.Path(file_okay=False), default=None,
              help="write MP4s of the greedy agent to this folder (one per episode; --episodes defaults to 1)")
@friendly
def eval_(run_dir, episodes, seed, device, as_json, video_dir):
    """Re-evaluate the saved agent of RUN_DIR with the deterministic policy (or film it with --video)."""
    from rlsuite import runs
    from rlsuite.config.schema import check_seed
    from rlsuite.envs import video
    from rlsuite.core.seeding import Seeds, episode_seeds

    if video_dir is not None:
        if episodes is not None and not 0 < episodes <= 1000:
            raise UserError(f"--episodes must be in [1, 1000] with --video, got {episodes}")
        policy = runs.load_policy(run_dir, device)
        n = episodes or 1
        seeds = Seeds(policy.seed, policy.seeding).eval_envs(n) if seed is None else episode_seeds(check_seed(seed), n)
        result = video.record(policy, video_dir, n, seeds)
        click.echo(json.dumps(result) if as_json else "\n".join(
            [f"episode {i}: return {r:.1f}" for i, r in enumerate(result["returns"])] + result["videos"]))
        return
    result = runs.evaluate(run_dir, episodes=episodes, seed=seed, device=device)
    click.echo(json.dumps(result) if as_json else _evaluation_line(result))


def _evaluation_line(r: dict) -> str:
    """The one line `rlsuite eval` prints: a return over episodes, or a classifier's test accuracy."""
    if "test_acc" in r:
        return f"{r['net']} on {r['dataset']}: test accuracy {r['test_acc']:.2%} on {r['test_images']:,} images"
    who = "" if r.get("implementation", "rlsuite") == "rlsuite" else f"{r['implementation']} "
    cut = r.get("cut_at_max_steps") or 0
    seeds = "the run's evaluation seeds" if r.get("seed") is None else f"seeds {r['seed']}, {r['seed'] + 1}, ..."
    return (f"{who}{r['agent']} on {r['env_id']} at step {r['step']:,}: {r['mean']:.1f} ± {r['std']:.1f} "
            f"over {r['episodes']} episodes ({seeds})"
            + (f"; {cut} of them cut at the evaluation's step limit, their returns partial" if cut else "")
            + ("; stochastic evaluation (eval_deterministic: false), not the protocol's deterministic policy"
               if r.get("deterministic") is False else ""))


@main.command("list", short_help="The agents, their cards and hyperparameters")
@click.argument("agent", required=False)
@click.option("--env", "env_id", default=None, help="with AGENT: the values a run on ENV uses (its card entry applied)")
@friendly
def list_(agent, env_id):
    """The agents, their cards and the envs each card covers; with AGENT, every hyperparameter with the
    value a run actually uses: the card's default entry, or with --env the entry for that env."""
    from rlsuite import runs
    from rlsuite.config.cards import agent_card_path, cards_root, load_agent_card
    from rlsuite.config.schema import describe
    from rlsuite.registry import agent_names, get_agent  # the library loads torch: imported when the command runs

    if agent:
        spec = get_agent(agent)
        card = load_agent_card(agent)
        used = runs.resolved_values(agent, spec.config_cls, env_id, rl=spec.kind == "rl")
        click.echo(f"{agent}: {spec.summary}\ncard: {agent_card_path(agent)}")
        if spec.kind == "rl":
            click.echo(f"tuned envs: {', '.join(card.get('envs') or {}) or '-'}")
            if env_id and env_id not in (card.get("envs") or {}):
                # a user reading values for an env may otherwise take them as tested there
                click.echo(f"note: {agent}'s card has no entry for {env_id}: these are its untuned defaults, "
                           f"never measured there")
        where = f"on {env_id}" if env_id else "card default"
        rows = [("hyperparameter", where, "dataclass default", "meaning")]
        for name, default, help_ in describe(spec.config_cls):
            value = str(used[name])
            rows.append((name, value + ("" if value == default else " *"), default, help_))
        # columns as wide as their widest entry plus two spaces: long names and schedules never run together
        widths = [max(len(row[i]) for row in rows) + 2 for i in range(3)]
        click.echo("")
        for row in rows:
            click.echo("".join(cell.ljust(w) for cell, w in zip(row, widths)) + row[3])
        click.echo("\n* = set by the card" + (" or the env card" if env_id else ""))
        return
    if env_id:
        raise UserError("--env goes with an agent: rlsuite list AGENT --env ENV")
    for name in agent_names(kind=None):
        spec = get_agent(name)
        card = load_agent_card(name)
        entries = ", ".join(card.get("envs") or {}) or "-"
        click.echo(f"{name:<11}{spec.summary}\n{'':<11}card entries: {entries}  (cards/agents/{name}.yaml)")

    envs = cards_root() / "envs"
    click.echo("\nAny registered Gymnasium id works; untuned envs use the card's default entry.")
    click.echo(f"Env cards (threshold, budgets, evaluation, preprocessing, vectorization): {envs}/<EnvId>.yaml, "
               f"{len(list(envs.glob('*.yaml')))} of them (ALE/Pong-v5 -> ALE__Pong-v5.yaml).")


@main.command(short_help="Train SB3's AGENT on ENV at the zoo's values")
@click.argument("agent")
@click.argument("env_id", metavar="ENV")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=int, default=None, help="environment steps (default: the budget rlsuite's agent gets, from the cards)")
@click.option("--device", default="auto", show_default=True)
@click.option("--out", default=".", show_default=True, callback=_check_out)
@click.option("--quiet", is_flag=True)
@tracking_options
@friendly
def baseline(agent, env_id, seed, steps, device, out, quiet):
    """Train Stable-Baselines3's AGENT (dqn, a2c, ppo, sac, td3) on ENV with the card's zoo hyperparameters,
    logged and evaluated exactly like an rlsuite run."""
    from rlsuite.sb3.baseline import train_baseline  # the library loads torch: imported when the command runs

    result = train_baseline(agent, env_id, seed=seed, steps=steps, out=out, device=device, progress=not quiet)
    _print_result(result)


@main.command(short_help="rlsuite against SB3 on ENV over the same seeds")
@click.argument("args", nargs=-1, required=True, metavar="AGENT ENV | GROUP GROUP...")
@click.option("--seeds", type=int, default=None,
              help="seeds 0..N-1, the same for both (default 10; docs/protocol.md: comparisons use at least 10)")
@click.option("--steps", type=int, default=None, help="environment steps for both (default: each card's budget)")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="override a card field; settings SB3 also has (lr, learning_starts, eval_episodes, ...) change on both sides")
@click.option("--out", default=".", show_default=True, callback=_check_out)
@click.option("--force", is_flag=True, help="retrain runs that already finished")
@click.option("-o", "--output", default=None, help="with groups of runs: the report's path (default compare.md)")
@click.option("--workers", type=int, default=None,
              help="processes that train SB3's seeds while rlsuite's population trains (default: CPU cores - 1, at least 1)")
@click.option("--quiet", is_flag=True, help="no live view of the runs in flight")
@click.option("--group", "group_by", multiple=True,
              help="with finished runs: group them by a field's values instead of by label (repeatable), e.g. "
                   "rlsuite compare runs/sweep-ppo-CartPole-v1 --group lr")
@click.option("--same-hparams", is_flag=True,
              help="rlsuite trains on the zoo's values, as SB3 does: the ratios compare the implementations alone")
@tracking_options
@friendly
def compare(args, seeds, steps, overrides, out, force, output, workers, quiet, group_by, same_hparams):
    """rlsuite vs SB3 on ENV over the same seeds (rlsuite's as one population, SB3's on --workers processes
    beside it); a table here, a report and plots on disk.
    Or, given groups of finished runs ([LABEL=]PATH, a run, a folder of runs or a quoted glob), the same
    table and plot for those runs: trial runs of a study, sweeps, benchmark runs.

    \b
    Examples:
      rlsuite compare dqn CartPole-v1 --seeds 10
      rlsuite compare best='tune/dqn-CartPole-v1/runs/*-10dff62a51-s*' \\
                      card='tune/dqn-CartPole-v1/runs/*-42054efb7f-s*' -o best-vs-card.md
    """
    from rlsuite.config.schema import parse_overrides
    from rlsuite.experiments.compare import compare_report, compare_runs
    from rlsuite.registry import agent_names
    from rlsuite.sb3.hyperparameters import baseline_hyperparameters  # the library loads torch: imported when the command runs

    first = args[0]
    if first not in agent_names() and ("=" in first or glob.has_magic(first) or Path(first).exists()):  # runs
        if seeds is not None or steps is not None or overrides or force or workers is not None or quiet or same_hparams:
            raise UserError("--seeds, --steps, --set, --force, --workers, --quiet and --same-hparams are for training; "
                            "comparing finished runs takes "
                            f"none of them (or give an agent first: {', '.join(agent_names())})")
        command = "rlsuite compare " + " ".join(shlex.quote(a) for a in args) + (f" -o {output}" if output else "")
        command += "".join(f" --group {shlex.quote(g)}" for g in group_by)
        table, report = compare_runs(list(args), output or "compare.md", command, list(group_by))
        click.echo("\n".join(table))
        click.echo(f"report: {report}")
        return
    if group_by:
        raise UserError("--group is for finished runs (compare PATH --group FIELD); compare AGENT ENV groups by side")
    if len(args) != 2:
        raise UserError(f"rlsuite compare AGENT ENV takes two arguments, got {len(args)}: {' '.join(args)}")
    if output is not None:
        raise UserError("-o is for groups of finished runs; `compare AGENT ENV` writes its report under OUT/runs")
    agent, env_id = args
    seeds = 10 if seeds is None else seeds
    baseline_hyperparameters(agent, env_id)  # no SB3 counterpart: fail before any training
    if not 0 < seeds <= 10_000:
        raise UserError(f"--seeds must be in [1, 10000], got {seeds}")
    if steps is not None and steps <= 0:
        raise UserError(f"--steps must be a positive number of environment steps, got {steps}")
    workers = max(1, (os.cpu_count() or 2) - 1) if workers is None else workers
    if not 0 <= workers <= 1024:
        raise UserError(f"--workers must be in [0, 1024] (0: SB3's seeds after rlsuite's, in this process), got {workers}")
    table, report = compare_report(agent, env_id, seeds, steps, parse_overrides(overrides), out, force,
                                   echo=lambda line: click.echo(line, err=True), workers=workers,
                                   live=None if quiet else "auto", same_hparams=same_hparams)
    click.echo("\n".join(table))
    click.echo(f"report: {report}")


def tensorboard_command(dirs) -> str:
    """One command that opens exactly these runs: their common folder, or one named entry per run."""
    parents = sorted({str(Path(d).parent) for d in dirs})
    if len(parents) == 1:
        return f"tensorboard --logdir {parents[0]}"
    return "tensorboard --logdir_spec " + ",".join(f"{Path(d).name}:{d}" for d in dirs)


@main.command(short_help="Reward curves across seeds from run directories")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", default="curves.png", show_default=True, help="image path (.png)")
@click.option("--group", multiple=True,
              help="split the curves by a field (repeatable): any hyperparameter (lr, n_steps, ...), env-card field, "
                   "agent or implementation; env_id draws one figure per environment")
@click.option("--title", default=None)
@click.option("--stat", type=click.Choice(["mean", "iqm"]), default="mean", show_default=True,
              help="the curve across seeds: mean or interquartile mean, each with a 95% bootstrap band")
@friendly
def plot(run_dirs, output, group, title, stat):
    """Reward curves (mean and 95% band across seeds) from run directories or folders of runs.

    \b
    Examples:
      rlsuite plot runs/compare-dqn-CartPole-v1 -o curves.png
      rlsuite plot results/runs/bench-pg/ppo --group env_id --stat iqm -o ppo.png   # a benchmark's runs
    """
    from rlsuite.experiments.plots import IMAGE_SUFFIXES, expand_run_dirs, load_curve, plot_curves, usable_runs  # the library loads torch: imported when the command runs

    if not output.strip() or Path(output).is_dir() or not Path(output).name:
        raise UserError(f"-o {output!r} must be an image path, e.g. -o curves.png")
    if Path(output).suffix and Path(output).suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"-o {output}: an image path ends in {', '.join(IMAGE_SUFFIXES)} (or has no suffix: .png)")
    dirs, skipped = usable_runs(expand_run_dirs(run_dirs))
    if not dirs and len(skipped) == 1:  # the one reason, in one line
        raise UserError(f"cannot plot {skipped[0].removeprefix('skipping ')}")
    for warning in skipped:
        click.echo(f"warning: {warning}", err=True)
    if not dirs:
        raise UserError("none of these runs can be plotted (see the warnings above)")
    out = Path(output)
    fields = [g for g in group if g != "env_id"] or None
    if "env_id" in group:
        by_env: dict[str, list] = {}
        for d in dirs:
            by_env.setdefault(str(load_curve(d)["env_id"]), []).append(d)
        figures = [plot_curves(members, out.with_name(f"{out.stem}-{safe_name(env)}{out.suffix}"), title, stat=stat,
                               group_by=fields) for env, members in by_env.items()]
    else:
        figures = [plot_curves(dirs, out, title, stat=stat, group_by=fields)]
    split = sorted({name for f in figures for name in f.grouped_by})
    if split and not fields:
        click.echo(f"grouped by {', '.join(split)}: these runs differ in more than the seed (choose with --group)", err=True)
    written = [p for f in figures for p in f.paths]
    for p in written:
        click.echo(f"wrote {p}")
    click.echo(f"the same runs in TensorBoard: {tensorboard_command(dirs)}")


@main.command(short_help="Seeds × a --set grid, on a local pool or Ray")
@click.argument("agent")
@click.argument("env_id", metavar="ENV")
@click.option("--seeds", type=int, default=5, show_default=True, help="seeds 0..N-1 for every grid point")
@click.option("--set", "sets", multiple=True, metavar="KEY=V1,V2",
              help="grid axis (repeatable); list fields separate alternatives with '|': hidden=64,64|128,128")
@click.option("--steps", type=int, default=None)
@click.option("--workers", type=int, default=None, help="parallel runs (default: CPU cores)")
@click.option("--backend", default="local", show_default=True, help="local (process pool) or ray")
@click.option("--address", default=None, help="Ray cluster address (host:port or auto); default: a local Ray")
@click.option("--out", default=".", show_default=True, callback=_check_out)
@click.option("--quiet", is_flag=True, help="no live view of the runs in flight")
@tracking_options
@friendly
def sweep(agent, env_id, seeds, sets, steps, workers, backend, address, out, quiet):
    """Run seeds × a --set grid, on a local process pool or a Ray cluster; finished runs are skipped."""
    from rlsuite.experiments.sweep import expand_grid, summary_table, sweep as run_sweep, write_report  # the library loads torch: imported when the command runs

    def report(r):
        if r["status"] == "busy":
            click.echo(f"BUSY {r['name']}: {r['error']}")
        elif r["status"] == "failed":
            click.echo(f"FAILED {r['name']}: {r['error']} (log: {r['log']})")
        else:
            click.echo(f"{r['status']:<11} {r['name']}: final {r['final']:.1f}" if r["final"] is not None
                       else f"{r['status']:<11} {r['name']}")

    if backend == "local" and address:
        raise UserError("--address is for --backend ray; drop it, or add --backend ray")
    try:
        results = run_sweep(agent, env_id, seeds, list(sets), os.cpu_count() or 1 if workers is None else workers,
                            backend, address, steps, out, report, live=None if quiet else "auto")
    except SystemExit as e:  # a SIGTERM (the handler above exits 143): the runs in flight stopped at a checkpoint
        if e.code == 143:
            click.echo("sweep stopped by SIGTERM: the runs in flight stopped at a checkpoint and no other started; "
                       "re-run the same command to resume (finished runs are reused)", err=True)
        raise

    grid = expand_grid(agent, list(sets))
    table = summary_table(results, grid, agent, env_id)
    if table:
        click.echo("\n" + "\n".join(table))
    report_path = write_report(results, grid, agent, env_id, "rlsuite " + shlex.join(sys.argv[1:]), out)
    if report_path:
        click.echo(f"report: {report_path} (curves: {report_path.with_name('curves.png')})")
    failed = [r for r in results if r["status"] == "failed"]
    busy = [r for r in results if r["status"] == "busy"]
    click.echo(f"{len(results) - len(failed) - len(busy)} runs finished, {len(failed)} failed"
               + (f", {len(busy)} left to the process already training them" if busy else ""))
    if failed:
        sys.exit(1)


class _TuneGroup(_Group):
    """`rlsuite tune AGENT ENV ...` runs a study; `rlsuite tune show DIR` reports one. A first argument
    that is not a subcommand goes to `run`."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@main.group(cls=_TuneGroup, short_help="Hyperparameter search with Optuna")
def tune():
    """Hyperparameter search with Optuna (TPE, pruning on the periodic evaluations), resumable.

    \b
    Examples:
      rlsuite tune dqn CartPole-v1 --trials 60 --seeds 3          # local, all cores, resumable
      rlsuite tune ppo CartPole-v1 --trials 200 --workers 16 --storage tune.journal
      rlsuite tune dqn LunarLander-v3 --trials 100 --backend ray --address auto
      rlsuite tune show tune/dqn-CartPole-v1                      # best trials, plots, the card entry
      rlsuite tune show results/tune_cards/dqn-CartPole-v1        # a study behind a shipped card

    Every option of a study: `rlsuite tune run --help`.
    """


@tune.command("run")
@click.argument("agent")
@click.argument("env_id", metavar="ENV")
@click.option("--trials", type=int, default=50, show_default=True, help="trials in the study (a re-run continues to this total)")
@click.option("--seeds", type=int, default=3, show_default=True, help="seeds per trial: --first-seed .. +N-1")
@click.option("--first-seed", type=int, default=0, show_default=True,
              help="keep tuning seeds apart from the seeds a card is validated on (e.g. 100-109)")
@click.option("--steps", type=int, default=None, help="each trial's budget per seed (default: the card's total_steps)")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="fix a field in every trial (repeatable)")
@click.option("--space", "space_file", type=click.Path(), default=None,
              help="a YAML search space (fields -> distributions) instead of the card's tune: section")
@click.option("--search", multiple=True, metavar="FIELD=DIST",
              help="add or replace one field of the space, e.g. --search 'lr={loguniform: [1e-4, 1e-2]}'")
@click.option("--workers", type=int, default=None, help="parallel trials (default: CPU cores, or the Ray cluster's CPUs)")
@click.option("--storage", default=None, help="journal file, SQLite file (.db) or RDB URL (default: TUNE_DIR/study.journal)")
@click.option("--backend", default="local", show_default=True, help="local (worker processes) or ray")
@click.option("--address", default=None, help="Ray cluster address (host:port or auto); default: a local Ray")
@click.option("--pruner", default="median", show_default=True, help="median | halving | none")
@click.option("--sampler-seed", type=int, default=0, show_default=True)
@click.option("--name", default=None, help="the study's folder under OUT/tune (default: AGENT-ENV)")
@click.option("--out", default=".", show_default=True, callback=_check_out)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
@click.option("--no-reference", is_flag=True, help="skip the current card's runs the report compares against")
@click.option("--cost", default=None,
              help="the objective's cost term: updates (gradient steps per env step; default), cpu (training CPU time "
                   "per env step) or none; a continued study keeps its own")
@click.option("--cost-weight", type=float, default=None,
              help="objective lost per doubling of the cost against the current card's (default 0.05)")
@click.option("--quiet", is_flag=True, help="no live view of the trial runs in flight")
@tracking_options
@friendly
def tune_run(agent, env_id, trials, seeds, first_seed, steps, sets, space_file, search, workers, storage, backend,
             address, pruner, sampler_seed, name, out, device, no_reference, cost, cost_weight, quiet):
    """Tune AGENT on ENV: each trial trains --seeds runs; re-running the same command resumes the study."""
    from rlsuite.tune.search import tune as run_tune  # the library loads torch: imported when the command runs

    result = run_tune(agent, env_id, trials, seeds, first_seed, steps, sets, space_file, search,
                      workers, storage, backend, address, out, name,
                      pruner, sampler_seed, device, reference=not no_reference, echo=click.echo, cost=cost,
                      cost_weight=cost_weight, live=None if quiet else "auto")
    best = Path(result["tune_dir"]) / "best.yaml"
    if best.exists():
        click.echo("\n" + best.read_text().rstrip())
    click.echo(f"report: {result['report']}")
    if result["exit_code"]:
        click.echo("stopped; the study and its runs are kept: re-run the same command to resume", err=True)
        sys.exit(result["exit_code"])


@tune.command("show")
@click.argument("tune_dir", type=click.Path())
@friendly
def tune_show(tune_dir):
    """Regenerate TUNE_DIR/report.md and print the best trial's card entry."""
    from rlsuite.tune.report import show  # the library loads torch: imported when the command runs

    for line in show(tune_dir):
        click.echo(line)


SECTIONS = ("dqn", "pg", "reinforce", "cards", "floatpaths", "tuning", "mnist", "faults", "pixels", "continuous",
            "matrix", "populations")


@main.command(short_help="Regenerate the committed reports in results/")
@click.option("--sections", default="dqn,pg,reinforce,cards,floatpaths,tuning,mnist,faults,pixels,continuous,matrix,populations",
              show_default=True, help="benchmark scripts to run, in order (benchmarks/<name>.py -> OUT/<name>/)")
@click.option("--seeds", type=int, default=None, help="seeds per comparison (default: each script's, 10 for RL)")
@click.option("--out", default="results", show_default=True, callback=_check_out)
@click.option("--index", "index_only", is_flag=True,
              help="only rewrite OUT/README.md, the summary of the reports in OUT (seconds; trains nothing)")
@click.option("--quiet", is_flag=True, help="no live view of the runs in flight (the scripts' own output only)")
@friendly
def bench(sections, seeds, out, index_only, quiet):
    """Regenerate the committed reports in results/ (days on 2 cores; never part of CI).

    \b
    dqn         DQN against SB3 (CartPole side by side, the zoo's values for speed, MountainCar)
    pg          REINFORCE / A2C / PPO targets (CartPole, PPO LunarLander)
    reinforce   REINFORCE on CartPole, Acrobot, LunarLander (10 seeds)
    cards       every shipped card against its target on fresh seeds 100-109
    floatpaths  which float-path switches change the arithmetic here; the validated cards again under
                ATEN_CPU_CAPABILITY=default, seeds 100-104
    tuning      what `rlsuite tune` costs (DQN CartPole; pruning; 2 workers)
    mnist       the supervised module
    faults      kill -9, SIGTERM and (with a small disk) disk-full trials
    pixels      frame memory, Atari Pong steps/s against SB3 and EnvPool, MinAtar DQN/PPO against SB3
    continuous  SAC and TD3 against SB3 on Pendulum-v1; SAC, TD3 and PPO against SB3 on MuJoCo
    matrix      DQN, A2C, PPO against SB3 on CartPole-v1, Acrobot-v1, LunarLander-v3 (10 seeds)
    populations a population of 10 seeds in one process against 10 separate runs: CPU cost and learning
    (benchmarks/peers.py, against SBX and rejax, needs a venv of its own for rejax: it is run by hand)
    Each writes OUT/<name>/README.md and its figures. Finished runs under OUT/runs are reused while their settings
    match and interrupted ones resume, so a rerun only trains what is missing. OUT/README.md, the summary
    table of every report, is rewritten after each script (and by --index alone).
    """
    from rlsuite.experiments.summary import write_summary  # the library loads torch: imported when the command runs

    if index_only:
        if not Path(out).is_dir():
            raise UserError(f"{out} is not a folder of reports; give the results folder, e.g. --out results")
        try:
            click.echo(f"summary written: {write_summary(out)}")
        except OSError as e:
            raise disk_error(e, f"{Path(out) / 'README.md'}", "free space or fix permissions") from None
        return
    if seeds is not None and not 1 <= seeds <= 100:
        raise UserError(f"--seeds {seeds}: give a number of seeds in [1, 100]")
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the reports")
    scripts = Path(__file__).resolve().parents[1] / "benchmarks"
    if not scripts.is_dir():
        raise UserError("rlsuite bench needs a source checkout: the benchmark scripts live in benchmarks/")
    extra = {"pg": ["--sections", "cartpole,reinforce,lunarlander"], "floatpaths": ["--cards"]}
    names = [n.strip() for n in sections.split(",") if n.strip()]
    if not names:
        raise UserError(f"--sections names no section; choose from {', '.join(SECTIONS)}")
    for name in names:
        if name not in SECTIONS or not (scripts / f"{name}.py").exists():
            raise UserError(f"unknown benchmark section '{name}'; choose from {', '.join(SECTIONS)}")
    try:  # made only once the command is known to run: a refused bench leaves no folder
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise disk_error(e, out, "choose another --out") from None
    from rlsuite.run.live import LiveRuns, runs_touched_since

    for name in names:
        cmd = [sys.executable, str(scripts / f"{name}.py"), *extra.get(name, []), "--out", out]
        cmd += ["--seeds", str(seeds)] if seeds is not None and name not in ("faults", "cards", "floatpaths", "tuning", "pixels", "continuous") else []  # fixed trials / seeds
        click.echo(f"$ python {' '.join(cmd[1:])}")
        # the runs the script trains, from their status files; on a terminal the live table replaces the script's
        # own output, which goes to OUT/<name>/bench.log
        live = None if quiet else LiveRuns(runs_touched_since(Path(out) / "runs", time.time()), f"bench {name}")
        log = None
        if live is not None and live.mode == "table":
            (Path(out) / name).mkdir(parents=True, exist_ok=True)
            log = open(Path(out) / name / "bench.log", "w")
            click.echo(f"  its output: {log.name}")
        with live or contextlib.nullcontext():
            failed = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT if log else None).returncode != 0
        if log is not None:
            log.close()
        write_summary(out)  # what the script wrote before it stopped is summarised too
        if failed:
            where = f"the end of {log.name}" if log else "its output above"
            raise UserError(f"benchmark section '{name}' failed; see {where}")
    click.echo(f"report: {Path(out) / 'README.md'}")


@main.command(short_help="Train a classifier on MNIST or Fashion-MNIST")
@click.argument("dataset")
@click.option("--net", default="mlp", show_default=True, help="mlp (784-64-10) or cnn")
@click.option("--epochs", type=int, default=None, help="maximum epochs (default: the card's)")
@click.option("--data-dir", type=click.Path(), default=None,
              help="folder with the four IDX files (else $RLSUITE_DATA_DIR/<dataset>, then the user cache)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
@click.option("--out", default=".", show_default=True, callback=_check_out)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a card field (repeatable)")
@click.option("--no-download", is_flag=True, help="never download; fail if the files are missing")
@click.option("--quiet", is_flag=True, help="no progress bar")
@tracking_options
@friendly
def supervised(dataset, net, epochs, data_dir, seed, device, out, overrides, no_download, quiet):
    """Train a classifier built from the shared networks on DATASET (mnist or fashion-mnist).

    \b
    Examples:
      rlsuite supervised mnist --net mlp
      rlsuite supervised mnist --net cnn --epochs 5 --data-dir ~/data/mnist
      rlsuite supervised fashion-mnist --net cnn --data-dir /usr/share/datasets/fashion-mnist
    """
    from rlsuite.config.schema import parse_overrides
    from rlsuite.supervised.classifier import run_supervised  # the library loads torch: imported when the command runs

    progress = not quiet
    result = run_supervised(dataset, net, epochs=epochs, seed=seed, data_dir=data_dir,
                            overrides=parse_overrides(overrides), out=out, device=device, progress=progress,
                            allow_download=not no_download)
    if result.get("status") == "interrupted":
        click.echo(f"stopped at step {result['step']:,}; checkpoint saved in {result['run_dir']}")
        if result.get("exit_code"):
            sys.exit(result["exit_code"])
        return
    worst = min(result["per_class_acc"].items(), key=lambda kv: kv[1])
    click.echo(f"test accuracy {result['test_acc']:.2%} ({result['net']}, {result['epochs']} epochs, "
               f"best validation epoch {result['best_epoch']}, {result['wall_s']:.1f} s of training)")
    click.echo(f"weakest class: {worst[0]} at {worst[1]:.2%}; confusion matrix: {result['run_dir']}/confusion.png")
    click.echo(f"run directory: {result['run_dir']}")


def console() -> None:
    """The `rlsuite` executable: the command line, then an exit a late stop signal cannot spoil. For the
    executable only: it leaves SIGTERM and SIGINT ignored, so a program embedding the CLI calls `main`."""
    try:
        main()
    finally:
        # The command's work is done and its output written; the interpreter's teardown is left (torch's
        # atexit hooks among it, up to 2 s on a busy machine). A SIGTERM there raised SystemExit inside an
        # atexit hook (a traceback, then exit 0) or, once Python had put back the default action, killed
        # the process (-15) after a complete run. Ignored from here, so the exit code is the command's.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)


if __name__ == "__main__":  # pragma: no cover
    console()
