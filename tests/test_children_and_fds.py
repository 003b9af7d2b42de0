"""Children, credentials and fds across processes and sockets, against native runs:
splice/tee/vmsplice (io.Copy between TCP connections), SysProcAttr (Credential, Setpgid,
Setsid, Pdeathsig, Ptrace), SCM_RIGHTS, fcntl locks that survive starting children, and
cmd.ExtraFiles under --follow-exec."""
from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys

import pytest

from conftest import ROOT, TIMEOUT, exit_status, go119, run_goemu, run_native

NOBODY = 65534


def _same(native, emu) -> None:
    assert native.returncode == 0, native.stdout + native.stderr
    assert emu.stdout == native.stdout, emu.stderr.decode(errors="replace")[-2000:]
    assert emu.stderr == native.stderr
    assert exit_status(emu) == exit_status(native)


@pytest.mark.parametrize("options", [(), ("--deterministic",)], ids=["plain", "deterministic"])
def test_io_copy_between_tcp_connections_splices(options, tmp_path):
    """io.Copy(tcp, tcp) splices through a pipe; splice was ENOSYS and every proxy broke."""
    binary = go119("splicerelay")
    _same(run_native(binary, cwd=tmp_path), run_goemu(binary, cwd=tmp_path, options=options))


def _as_nobody_native(binary, cwd):
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(binary)],
                          capture_output=True, cwd=cwd, timeout=TIMEOUT)


def _as_nobody_goemu(binary, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "tests" / "asuser.py"), str(NOBODY), str(NOBODY), "--",
                           "run", str(binary)], capture_output=True, cwd=cwd, env=env, timeout=TIMEOUT)


def test_sysprocattr_credential_pgid_sid_ptrace(tmp_path):
    """exec.Cmd with SysProcAttr: as the user the tests run as, and (when that is root, which
    can switch) as nobody, where changing credentials is EPERM."""
    binary = go119("procattr")
    os.chmod(tmp_path, 0o777)
    _same(run_native(binary, cwd=tmp_path), run_goemu(binary, cwd=tmp_path))
    if os.geteuid() == 0:
        native = _as_nobody_native(binary, tmp_path)
        assert b"root: false" in native.stdout
        _same(native, _as_nobody_goemu(binary, tmp_path))


@pytest.mark.parametrize("options", [(), ("--follow-exec",)], ids=["host-children", "follow-exec"])
def test_fds_passed_and_locks_kept(options, tmp_path):
    binary = go119("fdpass")
    _same(run_native(binary, cwd=tmp_path), run_goemu(binary, cwd=tmp_path, options=options))


def _lock_type_seen_by_other_process(path, start: int) -> int:
    """F_GETLK from a separate process (locks are per process): F_UNLCK (2) if free."""
    code = ("import fcntl,struct,sys; f=open(sys.argv[1],'rb+'); "
            "r=fcntl.fcntl(f, fcntl.F_GETLK, struct.pack('hhqqi4x', fcntl.F_WRLCK, 0, int(sys.argv[2]), 1, 0)); "
            "print(struct.unpack('hhqqi4x', r)[0])")
    out = subprocess.run([sys.executable, "-c", code, str(path), str(start)], capture_output=True, check=True)
    return int(out.stdout)


def test_vfork_child_table_never_closes_a_locked_files_fd(tmp_path):
    """The vfork child's fd table borrows host fds: dups, closes and its end never close a host
    fd in goemu's process, and a host fd its owner closes meanwhile stays valid for the child."""
    from goemu.fdtable import Fd, FdTable
    path = tmp_path / "f"
    path.write_bytes(b"\0" * 100)
    parent = FdTable()
    host = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    parent.install(Fd(host), at=3)
    fcntl.fcntl(host, fcntl.F_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 10, 5, 0))
    assert _lock_type_seen_by_other_process(path, 12) == fcntl.F_WRLCK
    child = parent.borrow()
    child.dup(3, at=0)
    child.dup(3, start=5)
    child.close(3)
    child.close_all()
    assert _lock_type_seen_by_other_process(path, 12) == fcntl.F_WRLCK
    # the parent closes its fd while a child still borrows it: the number stays valid until the
    # child execs or exits (only then is the lock dropped, as the parent's close drops it natively)
    child = parent.borrow()
    parent.close(3)
    os.fstat(child.host(3))
    child.close_all()
    with pytest.raises(OSError):
        os.fstat(host)
    assert _lock_type_seen_by_other_process(path, 12) == fcntl.F_UNLCK


def test_children_get_the_guests_limits_not_goemus():
    """goemu lifts its own soft RLIMIT_AS (and RLIMIT_NOFILE) and keeps the original for the
    guest (goemu/hostlimits.py); a program the guest starts inherits the guest's, as natively:
    under `ulimit -Sv 8000000` the child's soft limit is 8000000, not goemu's unlimited."""
    script = "ulimit -Sv 8000000; exec \"$@\""
    child = ["/bin/sh", "-c", "ulimit -Sn; ulimit -Hn; ulimit -Sv; ulimit -Hv"]
    native = subprocess.run(["sh", "-c", script, "sh", str(go119("execgo")), *child],
                            capture_output=True, timeout=TIMEOUT)
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    emu = subprocess.run(["sh", "-c", script, "sh", sys.executable, "-m", "goemu", "run",
                          str(go119("execgo")), *child], capture_output=True, env=e, timeout=TIMEOUT)
    assert b'\\n8000000\\n' in native.stdout
    _same(native, emu)
