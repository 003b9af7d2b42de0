"""Shared helpers: fixture paths, and running a binary natively and under goemu.

Native runs of the same binaries are the oracle. A missing fixture is a failure (run
`make fixtures`), never a skip.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GO114 = ROOT / "fixtures" / "go114-binaries" / "bin"
GO119 = ROOT / "fixtures" / "go1.19-binaries"
TIMEOUT = 600


def fixture_binary(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"fixture {path} is missing: run `make fixtures`")
    return path


def go119(name: str) -> Path:
    return fixture_binary(GO119 / name)


def esbuild(version: str) -> Path:
    return fixture_binary(GO114 / f"esbuild-{version}")


def _env(extra: dict | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOEMU_TEST_", "GODEBUG", "GOMAXPROCS"))}
    env.update(extra or {})
    return env


def run_native(binary, *args, env=None, cwd=None, input=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, env=_env(env),
                          cwd=cwd, input=input, timeout=TIMEOUT)


def run_goemu(binary, *args, env=None, cwd=None, input=None, options=()) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "goemu", "run", *options, str(binary), *map(str, args)]
    e = _env(env)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return subprocess.run(cmd, capture_output=True, env=e, cwd=cwd, input=input, timeout=TIMEOUT)


def goemu_cli(*args, cwd=None, preexec_fn=None) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "goemu", *map(str, args)], capture_output=True,
                          env=e, cwd=cwd, timeout=TIMEOUT, preexec_fn=preexec_fn)


def exit_status(p: subprocess.CompletedProcess) -> int:
    """A shell's view: 128+N for a process killed by signal N."""
    return 128 - p.returncode if p.returncode < 0 else p.returncode


def first_lines(data: bytes, n: int = 2) -> list[bytes]:
    return data.splitlines()[:n]
