"""Starting rlsuite's own child processes (sweep jobs, tune workers, compare's SB3 seeds) safely."""

from __future__ import annotations

import os
import sys


def module_command(module: str, *args: str) -> list[str]:
    """`python -m MODULE ARGS` without the current directory first on the child's sys.path, where `python -m`
    would put it: a `yaml.py` in the folder a sweep starts from would otherwise run in every child."""
    if sys.version_info >= (3, 11):
        return [sys.executable, "-P", "-m", module, *args]
    launcher = f"import runpy, sys; sys.path.pop(0); runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    return [sys.executable, "-c", launcher, *args]


def child_env() -> dict:
    """The parent's environment, with its sys.path as PYTHONPATH: a module the parent can import (a custom env
    registered from the user's script folder) imports in the child too. The current directory goes only where the
    parent had it."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
