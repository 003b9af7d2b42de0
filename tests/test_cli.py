"""--strace output and `goemu syscalls`."""
from __future__ import annotations

import json

from conftest import esbuild, goemu_cli


def test_strace_lines(tmp_path):
    p = goemu_cli("run", "--strace", esbuild("0.5.26"), "nosuch.js", "--bundle", "--outfile=out.js",
                  cwd=tmp_path)
    lines = p.stderr.decode().splitlines()
    # the runtime's threads: clone with exactly the flags 0x50f00, decoded
    clones = [l for l in lines if " clone(" in l]
    assert clones and all("clone(CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, "
                          in l for l in clones)
    # errors as strace prints them, with Linux's errno choices
    assert any('openat(AT_FDCWD, "' in l and 'nosuch.js", O_CLOEXEC, 0o0) = -1 ENOENT (No such file or directory)'
               in l for l in lines)
    # epoll_ctl on a regular file or directory is EPERM, for ADD and DEL alike (Go relies on it)
    assert any(l.startswith("[") and "epoll_ctl(" in l and ", 2, 3," in l
               and l.endswith("= -1 EPERM (Operation not permitted)") for l in lines)
    assert all(l.startswith("[") or l.startswith("goemu: note:") or "error" in l or not l
               for l in lines), [l for l in lines if not l.startswith("[")][:5]


def test_syscalls_listing():
    p = goemu_cli("syscalls", "--json")
    rows = json.loads(p.stdout)
    by_name = {r["name"]: r for r in rows}
    for name in ("futex", "clone", "rt_sigaction", "mmap", "epoll_pwait", "openat", "exit_group"):
        assert name in by_name
    assert by_name["clone"]["nr"] == 56 and by_name["clone"]["level"] == "partial"
    text = goemu_cli("syscalls").stdout.decode()
    assert "ENOSYS" in text.splitlines()[-1]


def test_strace_shows_sigchld_as_strace_does():
    """--strace prints SIGCHLD's siginfo with the child's pid, uid and status (CLD_EXITED with
    the exit code; execs runs a child that exits 3), not a fault address."""
    import re

    from conftest import go119, run_goemu
    p = run_goemu(go119("execs"), options=("--strace",))
    lines = [ln for ln in p.stderr.decode(errors="replace").splitlines() if "--- SIGCHLD" in ln]
    assert lines, p.stderr[-2000:]
    assert all(re.search(r"si_code=CLD_\w+, si_pid=\d+, si_uid=\d+, si_status=\w+\} ---$", ln) for ln in lines)
    assert any("si_code=CLD_EXITED," in ln and ln.endswith("si_status=3} ---") for ln in lines)
