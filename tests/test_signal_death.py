"""How the guest's signals look from outside goemu.

* A guest killed by signal N: goemu dies of signal N too (as qemu-user does), so waitpid and
  shells see a signal death ($? = 128+N, Python's returncode -N), without a core file of goemu
  even where core files are enabled; goemu's one line on stderr stays.
* Signals ignored at start stay ignored (Linux keeps SIG_IGN across execve): under nohup
  (SIGHUP) or as `prog &` in sh (SIGINT), the signal does not kill the guest.
The native run of the same binary is the oracle.
"""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, go119
from tinyelf import make_elf

NIL_LOAD = b"\x48\x8b\x04\x25\x00\x00\x00\x00"      # mov rax, [0]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _goemu(*args):
    return [sys.executable, "-m", "goemu", "run", *map(str, args)]


def _cores_on():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def test_guest_signal_death_is_goemus(tmp_path):
    binary = make_elf(NIL_LOAD, tmp_path / "segv")
    native = subprocess.run([str(binary)], capture_output=True, cwd=tmp_path)
    assert native.returncode == -signal.SIGSEGV
    for core in tmp_path.glob("core*"):
        core.unlink()
    p = subprocess.Popen(_goemu(binary), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
                         cwd=tmp_path, preexec_fn=_cores_on)
    out, err = p.communicate(timeout=60)
    assert p.returncode == native.returncode
    assert err.decode() == "goemu: guest terminated by SIGSEGV: Segmentation fault\n"
    assert out == b""
    assert not list(tmp_path.glob("core*"))        # goemu's own image is not dumped


def test_waitpid_sees_the_signal_and_no_core(tmp_path):
    binary = make_elf(NIL_LOAD, tmp_path / "segv")
    pid = os.fork()
    if pid == 0:
        try:
            _cores_on()
            os.chdir(tmp_path)
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, 2)
            os.environ["PYTHONPATH"] = str(ROOT)
            os.execv(sys.executable, _goemu(binary))
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV
    assert not os.WCOREDUMP(status)


def test_shell_status_is_128_plus_n(tmp_path):
    binary = make_elf(NIL_LOAD, tmp_path / "segv")
    script = 'cmd="$1"; shift; "$cmd" "$@" 2>/dev/null; echo "status=$?"'
    native = subprocess.run(["sh", "-c", script, "sh", str(binary)], capture_output=True)
    emu = subprocess.run(["sh", "-c", script, "sh", *_goemu(binary)], capture_output=True, env=_env())
    assert native.stdout == emu.stdout == b"status=139\n"


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT])
def test_signals_ignored_at_start_stay_ignored(sig):
    """selfsignal nonotify sleeps 5 s; its parent ignored `sig` before exec (nohup, `&` in sh),
    so `sig` sent to it is dropped and it prints "not killed" (exit 1) natively and under goemu.
    A SIGTERM (not ignored) still kills both."""

    def ignore():
        signal.signal(sig, signal.SIG_IGN)

    procs = []
    for cmd in ([str(go119("selfsignal")), "nonotify"], _goemu(go119("selfsignal"), "nonotify")):
        for ignored in (True, False):
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
                                 preexec_fn=ignore if ignored else None)
            procs.append((cmd, ignored, p))
    for _cmd, _ignored, p in procs:
        assert p.stdout.readline() == b"ready\n"
    time.sleep(0.2)
    for _cmd, ignored, p in procs:
        p.send_signal(sig if ignored else signal.SIGTERM)
    got = []
    for _cmd, ignored, p in procs:
        out, _err = p.communicate(timeout=60)
        got.append((ignored, p.returncode, out))
    native, emu = got[:2], got[2:]
    assert native[1] == (False, -signal.SIGTERM, b"")
    if sig != signal.SIGQUIT:      # Go keeps SIGHUP and SIGINT ignored; it takes SIGQUIT over
        assert native[0] == (True, 1, b"not killed\n")
    assert emu == native
