"""Guest memory exhaustion is the guest's problem, never goemu's: a 64 GiB mmap, Go's
make([]byte, 1<<40), and mappings past RLIMIT_AS get what Linux gives (ENOMEM from the
syscall, Go's "fatal error: runtime: out of memory", exit 2). The native run of the same
program under the same limits is the oracle (fixtures/src/bigalloc).

RLIMIT_AS is set as a soft limit (prlimit --as=N:unlimited): goemu lifts its own and applies N
to the guest's address space. Under a hard limit goemu cannot lift it (it needs ~64 GiB of
address space itself): it says so in one line and exits 126.
"""
from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time

import pytest

from conftest import ROOT, go119

LIMIT = 4_096_000_000      # bytes of RLIMIT_AS (the soft value) for the limited runs


def _run(cmd, soft=None, hard=None):
    def limit():
        if soft is not None:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard if hard is not None else resource.RLIM_INFINITY))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, env=env, preexec_fn=limit, timeout=300)
    return p, time.monotonic() - t0


def _both(args, soft=None):
    native, _ = _run([str(go119("bigalloc")), *args], soft)
    emu, seconds = _run([sys.executable, "-m", "goemu", "run", str(go119("bigalloc")), *args], soft)
    return native, emu, seconds


_IN_USE = re.compile(rb"\((\d+) in use\)")


def _same(native, emu):
    assert emu.returncode == native.returncode, emu.stderr.decode()[-2000:]
    assert emu.stdout == native.stdout
    # Go's own message, its first two lines: the same size asked for. The heap "in use" is the
    # runtime's bookkeeping at that moment and varies natively from run to run (3932160 or
    # 3964928 bytes for `make 4 GiB`: a span more or less, depending on what the background
    # goroutines had allocated); it must be of the same size, not the same number.
    def lines(p):
        return [_IN_USE.sub(b"(N in use)", ln) for ln in p.stderr.splitlines()[:2]]
    assert lines(emu) == lines(native)
    used = [int(m[1]) for m in (_IN_USE.search(p.stderr) for p in (native, emu)) if m]
    if used:
        assert len(used) == 2 and abs(used[0] - used[1]) <= max(used) // 4, used
    assert b"goemu: internal error" not in emu.stderr and b"Traceback" not in emu.stderr


@pytest.mark.parametrize("args", [("mmap", str(64 << 30)), ("mmap", str(1 << 30)),
                                  ("make", str(1 << 40))])
def test_unlimited(args):
    """No RLIMIT_AS: the host's overcommit policy decides (a 64 GiB or 1 TiB private writable
    mapping is more than RAM + swap here; 1 GiB is not)."""
    native, emu, seconds = _both(args)
    _same(native, emu)
    assert seconds < 120


@pytest.mark.parametrize("args", [("mmap", str(4 << 30)), ("make", str(4 << 30)),
                                  ("mmap", str(256 << 20)), ("make", str(256 << 20)),
                                  ("setrlimit", str(1 << 30))])
def test_under_rlimit_as(args):
    native, emu, seconds = _both(args, soft=LIMIT)
    _same(native, emu)
    assert seconds < 120


def test_oracle_reaches_enomem():
    """The cases above really cover both outcomes natively."""
    native = [str(go119("bigalloc"))]
    assert b"cannot allocate memory" in _run(native + ["mmap", str(4 << 30)], LIMIT)[0].stdout
    assert b"ok" in _run(native + ["mmap", str(256 << 20)], LIMIT)[0].stdout
    assert _run(native + ["make", str(1 << 40)])[0].returncode == 2


def test_hard_rlimit_as_is_one_line():
    emu, _ = _run([sys.executable, "-m", "goemu", "run", str(go119("bigalloc")), "mmap", "4096"],
                  soft=LIMIT, hard=LIMIT)
    if emu.returncode == 0:     # root with CAP_SYS_RESOURCE lifts the hard limit: the guest runs
        assert emu.stdout == b"mmap 4096: ok\n"
        return
    lines = emu.stderr.decode().splitlines()
    assert emu.returncode == 126 and len(lines) == 1 and "RLIMIT_AS" in lines[0], emu.stderr


def test_huge_prot_none_reservation_costs_nothing():
    """A 64 TiB PROT_NONE mapping (with its first and last pages made read-write) is free
    natively; goemu's page table for it must not be written page by page (16 GiB)."""
    args = ("reserve", str(1 << 46))
    native = subprocess.run([str(go119("bigalloc")), *args], capture_output=True, timeout=60)
    assert native.stdout == f"reserve {1 << 46}: ok 2\nmunmap: <nil>\n".encode()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "goemu", "run", str(go119("bigalloc")), *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = p.communicate(timeout=120)
    assert (p.returncode, out) == (native.returncode, native.stdout), err
    assert time.monotonic() - t0 < 30
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak_kib < 1 << 20, peak_kib      # under 1 GiB (the table alone would be 16 GiB)
