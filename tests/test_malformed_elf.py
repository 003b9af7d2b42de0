"""Malformed executables (tests/malformed_elf.py's corpus: bad fields, truncations at every
header boundary, a bit flipped in every header byte) end as Linux's execve ends them: the
native execve of the same file is the oracle.

* execve refuses the file (ENOEXEC, ...): goemu prints one line ``goemu: PATH: reason`` and
  exits 126;
* execve accepts it and the program runs, dies of SIGSEGV while Linux maps it (past execve's
  point of no return) or faults (SIGSEGV, SIGBUS for a page past the end of the file): goemu
  ends the same way (the same output, exit status or death by the same signal), with at most
  one line of its own on stderr;
* never a traceback, an internal error, or a long run.

One documented difference: Linux runs an ET_DYN file without an interpreter (a static PIE);
goemu refuses it (126, "position-independent").
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time

import pytest

import malformed_elf
from conftest import ROOT, goemu_cli

LIMIT = 10.0     # seconds per file, under goemu and natively


def _native(path) -> tuple:
    try:
        p = subprocess.run([str(path)], capture_output=True, timeout=LIMIT)
    except OSError as e:
        return ("errno", e.errno)
    return ("ran", p.returncode, p.stdout)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("malformed")
    files = []
    for name, data in malformed_elf.corpus():
        p = d / name
        p.write_bytes(data)
        p.chmod(0o755)
        files.append(p)
    return files


def _is_et_dyn(path) -> bool:
    data = path.read_bytes()[:18]
    return len(data) >= 18 and struct.unpack_from("<H", data, 16)[0] == 3


def _judge(path, native, status, stdout: bytes, stderr: str, seconds: float) -> list[str]:
    """What is wrong with goemu's outcome for `path` (empty: nothing)."""
    bad = []
    lines = stderr.splitlines()
    if status is None:
        return [f"still running after {LIMIT} s"]
    if seconds > LIMIT:
        bad.append(f"took {seconds:.1f} s")
    if "Traceback" in stderr or "internal error" in stderr:
        bad.append(f"stderr {stderr!r}")
    if len(lines) > 1:
        bad.append(f"{len(lines)} lines on stderr: {stderr!r}")
    if native[0] == "errno" or _is_et_dyn(path):
        if status != 126 or not lines or not lines[0].startswith(f"goemu: {path}: "):
            bad.append(f"native {native}, goemu status {status} {stderr!r}")
        if native[0] != "errno" and "position-independent" not in stderr:
            bad.append(f"native runs it; goemu's refusal must name the PIE limitation: {stderr!r}")
    elif (status, stdout) != native[1:]:
        bad.append(f"native status {native[1]} {native[2]!r}, goemu {status} {stdout!r} {stderr!r}")
    return bad


def test_the_valid_program_runs(tmp_path):
    p = tmp_path / "valid"
    p.write_bytes(malformed_elf.valid())
    p.chmod(0o755)
    assert _native(p) == ("ran", 42, b"ok\n")
    g = goemu_cli("run", p)
    assert (g.returncode, g.stdout, g.stderr) == (42, b"ok\n", b"")


def test_corpus_against_native(corpus):
    """Every file of the corpus, through goemu's CLI entry point (forked per file)."""
    natives = {str(p): _native(p) for p in corpus}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "cli_batch.py"), str(LIMIT),
                           *map(str, corpus)], capture_output=True, env=env,
                          timeout=LIMIT * len(corpus))
    assert proc.returncode == 0, proc.stderr.decode()
    results = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(results) == len(corpus)
    failures = []
    for r in results:
        path = next(p for p in corpus if str(p) == r["path"])
        bad = _judge(path, natives[r["path"]], r["status"], r["stdout"].encode("latin-1"),
                     r["stderr"], r["seconds"])
        if bad:
            failures.append(f"{path.name}: {'; '.join(bad)}")
    assert not failures, "\n".join(failures)
    # the kinds of outcome the corpus covers (so a corpus that stopped reaching Linux's checks
    # would be noticed)
    kinds = {n[0] if n[0] == "errno" else ("signal" if n[1] < 0 else "exit") for n in natives.values()}
    assert kinds == {"errno", "signal", "exit"}
    assert time.monotonic() - t0 < LIMIT * len(corpus)


@pytest.mark.parametrize("name", ["memsz_huge", "vaddr_above_user", "phnum_huge", "offset_misaligned",
                                  "filesz_huge", "entry_noncanonical"])
def test_named_cases_through_the_command_line(tmp_path, name):
    """A few of them through `python3 -m goemu run` itself (a fresh process each)."""
    data = dict(malformed_elf.bad_fields())[name]
    p = tmp_path / name
    p.write_bytes(data)
    p.chmod(0o755)
    native = _native(p)
    t0 = time.monotonic()
    g = goemu_cli("run", p)
    seconds = time.monotonic() - t0
    bad = _judge(p, native, g.returncode, g.stdout, g.stderr.decode(), seconds)
    assert not bad, bad
