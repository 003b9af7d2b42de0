"""Starting a binary: a huge sparse executable starts at once (its segments are mapped from
the file, never read whole), and a path execve cannot follow is reported with execve's own
error (native execve of the same path is the oracle)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

import malformed_elf
from conftest import ROOT, go119, goemu_cli

GIB = 1 << 30


def _run_measured(cmd) -> tuple[float, int, bytes, int]:
    """(seconds, status, stdout, peak RSS in KiB) of one process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stdout.close()
    return time.monotonic() - t0, p.returncode, out, usage.ru_maxrss


def _goemu(path):
    return _run_measured([sys.executable, "-m", "goemu", "run", str(path)])


@pytest.mark.parametrize("kind", ["segment", "tail"])
def test_sparse_3gib_binary_starts_at_once(tmp_path, kind):
    """A 3 GiB file (sparse): a 3 GiB file-backed data segment, or Go's hello with 3 GiB of
    hole after it. Natively it starts in milliseconds; goemu must take no longer and use no
    more memory than for the small program (within 64 MiB), so it cannot be reading the file."""
    if kind == "segment":
        small = tmp_path / "small"
        small.write_bytes(malformed_elf.valid())
        big = tmp_path / "big"
        big.write_bytes(malformed_elf.build(phdrs=[malformed_elf.phdr(),
                                                   malformed_elf._data(filesz=3 * GIB, memsz=3 * GIB)]))
        os.truncate(big, 0x1000 + 3 * GIB)
    else:
        small = go119("hello")
        big = tmp_path / "hello"
        shutil.copy(small, big)
        os.truncate(big, 3 * GIB)
    for p in (small, big):
        p.chmod(0o755)
    assert os.stat(big).st_blocks * 512 < 64 << 20          # sparse: it costs no disk
    native = _run_measured([str(big)])
    assert native[0] < 5
    small_run, big_run = _goemu(small), _goemu(big)
    assert big_run[1:3] == native[1:3] == small_run[1:3]
    assert big_run[0] < small_run[0] + 5, (big_run, small_run)
    assert big_run[3] < small_run[3] + 64 * 1024, (big_run, small_run)


def _native_error(path) -> OSError | None:
    try:
        subprocess.run([str(path)], capture_output=True, timeout=10)
    except OSError as e:
        return e
    return None


def _paths(tmp_path) -> dict:
    hello = tmp_path / "hello"
    shutil.copy(go119("hello"), hello)
    loop_a, loop_b = tmp_path / "loop_a", tmp_path / "loop_b"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    return {
        "ENOTDIR": f"{hello}/x",
        "ELOOP": str(loop_a),
        "ENAMETOOLONG": str(tmp_path / ("n" * 300)),
        "ENAMETOOLONG_path": str(tmp_path) + "/a" * 3000,
        "ENOENT": str(tmp_path / "nosuch"),
        "ENOENT_dir": str(tmp_path / "nosuch" / "hello"),
    }


@pytest.mark.parametrize("case", ["ENOTDIR", "ELOOP", "ENAMETOOLONG", "ENAMETOOLONG_path", "ENOENT",
                                  "ENOENT_dir"])
def test_path_errors_name_execves_error(tmp_path, case):
    path = _paths(tmp_path)[case]
    err = _native_error(path)
    assert err is not None and err.errno is not None
    g = goemu_cli("run", path)
    assert g.returncode == (127 if err.errno == 2 else 126)
    assert g.stderr.decode() == f"goemu: {path}: {err.strerror}\n"
    assert g.stdout == b""
