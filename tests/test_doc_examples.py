"""Every `rlsuite ...` command shown in the README and docs/ is a valid command: the command exists and accepts those
arguments and options (parsed by the CLI itself, not run: several train for hours). The Python examples run in
test_api.py; the README's first command and test command run in CI."""

import os
import re
import shlex
from pathlib import Path

import click
import pytest

from rlsuite.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def commands(page: Path) -> list[str]:
    out = []
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
        lines = block.replace("\\\n", " ").splitlines()
        for line in lines:
            line = re.sub(r"^\s*(\$ )?([A-Z_]+=\S+ )*", "", line)  # a prompt, environment variables
            if line.startswith("rlsuite "):
                out.append(line.split("  #")[0].split(" # ")[0].strip())
    return out


EXAMPLES = [(page.name, line) for page in PAGES for line in commands(page)]


def test_the_pages_show_commands():
    assert len(EXAMPLES) > 30


@pytest.mark.parametrize("page, line", EXAMPLES, ids=[f"{p}:{i}" for i, (p, _) in enumerate(EXAMPLES)])
def test_every_command_shown_is_valid(page, line, monkeypatch):
    for name in ("RLSUITE_TRACK", "WANDB_PROJECT", "WANDB_ENTITY", "RLSUITE_TRUSTED_MODULES"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after: option callbacks set them
    args = shlex.split(line)[1:]
    try:
        with main.make_context("rlsuite", list(args), resilient_parsing=False) as ctx:
            group, rest = main, ctx.protected_args + ctx.args
            while rest and isinstance(group, click.Group):
                name, cmd, rest = group.resolve_command(ctx, rest)
                ctx = cmd.make_context(name, rest, parent=ctx)
                group, rest = cmd, ctx.protected_args + ctx.args if isinstance(cmd, click.Group) else []
    except click.exceptions.Exit:
        pass  # --help, --version
    except click.UsageError as e:
        pytest.fail(f"{page}: `{line}` is not a valid command: {e.format_message()}")


QUICK = ("list", "runs")  # examples that take seconds run for real; the rest are parsed above


@pytest.mark.parametrize("page, line", [(p, line) for p, line in EXAMPLES if line.split()[1] in QUICK])
def test_the_quick_examples_run_as_written(page, line, tmp_path, monkeypatch):
    from click.testing import CliRunner

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    result = CliRunner().invoke(main, shlex.split(line)[1:])
    assert result.exit_code == 0, f"{page}: `{line}`: {result.output}"
