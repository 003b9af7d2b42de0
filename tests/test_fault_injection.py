"""The host refusing resources reaches the guest as the errno Linux gives, and nothing the
guest wrote is lost or corrupted (fixtures/src/exhaust; the native run is the oracle):

* EMFILE: open until RLIMIT_NOFILE (Go raises its soft limit to the hard one at start; goemu
  follows the guest's limit instead of a fixed 1024 fds);
* ENOSPC on a 256 KiB tmpfs (or, where mounting is not permitted, /dev/full: ENOSPC at once);
* EFBIG (and SIGXFSZ) past RLIMIT_FSIZE, after a short write up to the limit;
* EAGAIN on a full non-blocking unix socket, every byte read back intact;
* EPIPE on a pipe with no reader, and death by SIGPIPE writing to a closed stdout.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

from conftest import ROOT, go119

NOFILE_SOFT = 4000


def _limits(**lim):
    def apply():
        for name, soft in lim.items():
            res = getattr(resource, f"RLIMIT_{name.upper()}")
            resource.setrlimit(res, (soft, resource.getrlimit(res)[1]))
    return apply


def _cmds(*args):
    b = str(go119("exhaust"))
    return [b, *args], [sys.executable, "-m", "goemu", "run", b, *args]


def _run(cmd, preexec=None, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(cmd, capture_output=True, env=env, preexec_fn=preexec, timeout=300, **kw)


def _compare(args, preexec=None):
    native_cmd, emu_cmd = _cmds(*args)
    native, emu = _run(native_cmd, preexec), _run(emu_cmd, preexec)
    assert emu.returncode == native.returncode, emu.stderr
    assert emu.stdout == native.stdout, emu.stderr
    assert b"Traceback" not in emu.stderr
    return native


def test_emfile_follows_rlimit_nofile():
    native_cmd, emu_cmd = _cmds("fds")
    native, emu = _run(native_cmd, _limits(nofile=NOFILE_SOFT)), _run(emu_cmd, _limits(nofile=NOFILE_SOFT))
    n_native, n_emu = native.stdout.split(), emu.stdout.split()
    assert n_native[0] == n_emu[0] == b"fds" and n_native[2] == n_emu[2] == b"EMFILE"
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # natively Go lifts its soft limit to the hard one: all but Go's own few fds
    assert hard - 16 <= int(n_native[1]) < hard
    # goemu's guest fds are host fds; goemu's own (stdio copies, wake-up pipes) take a few
    # numbers below the same hard limit, never 1024 any more
    assert int(n_native[1]) - 16 <= int(n_emu[1]) <= int(n_native[1]), (native.stdout, emu.stdout)


@pytest.fixture
def small_fs(tmp_path):
    """A 256 KiB tmpfs if this process may mount one, else None."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_enospc(small_fs, tmp_path):
    target = str(small_fs / "fill") if small_fs else "/dev/full"
    native = _compare(("fill", target, str(10 << 20)))
    assert b"ENOSPC ENOSPC" in native.stdout
    if small_fs:
        assert b"intact 262144 true" in native.stdout
        os.unlink(target)


def test_efbig_past_rlimit_fsize(tmp_path):
    native = _compare(("fill", str(tmp_path / "fill"), str(10 << 20)), _limits(fsize=100_500))
    assert native.stdout.splitlines()[:3] == [b"got SIGXFSZ", b"wrote 100500 calls ended [short 500 EFBIG EFBIG] file 100500",
                                              b"intact 100500 true"]
    assert (tmp_path / "fill").stat().st_size == 100_500


def test_eagain_on_a_full_socket():
    native = _compare(("eagain",))
    assert b"stop EAGAIN" in native.stdout and b"true" in native.stdout


def test_epipe_then_sigpipe_on_closed_stdout():
    for cmd in _cmds("epipe"):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        r, w = os.pipe()
        os.close(r)                                   # stdout has no reader
        p = subprocess.run(cmd, stdout=w, stderr=subprocess.PIPE, env=env, timeout=120)
        os.close(w)
        assert p.stderr.decode().splitlines()[0] == "pipe write: EPIPE"
        assert p.returncode == -13, (cmd, p.stderr)
