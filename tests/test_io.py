"""I/O: the epoll netpoller, pipes, sockets, stdin, host signals and os/exec, against native."""
from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, esbuild, exit_status, go119, run_goemu, run_native

PROGRAMS = ["pipes", "tcpecho", "udp", "unixsock", "httpinproc", "execs"]


@pytest.mark.parametrize("name", PROGRAMS)
def test_io_program_matches_native(name, tmp_path):
    native = run_native(go119(name), cwd=tmp_path)
    emu = run_goemu(go119(name), cwd=tmp_path)
    assert native.returncode == 0
    assert emu.stdout == native.stdout, emu.stderr.decode(errors="replace")[-2000:]
    assert exit_status(emu) == exit_status(native)
    assert emu.stderr == native.stderr


def test_countlines_from_stdin():
    emu = run_goemu(go119("countlines"), input=b"a\nb\n")
    assert emu.stdout == run_native(go119("countlines"), input=b"a\nb\n").stdout == b"2\n"
    assert emu.returncode == 0


def test_esbuild_reads_stdin():
    src = b"let x = 1+2\n"
    emu = run_goemu(esbuild("0.5.26"), "--minify", input=src)
    native = run_native(esbuild("0.5.26"), "--minify", input=src)
    assert emu.stdout == native.stdout == b"let x=1+2;\n"
    assert emu.returncode == native.returncode == 0


def _goemu_cmd(binary, *args):
    return [sys.executable, "-m", "goemu", "run", str(binary), *map(str, args)]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT))


def test_blocked_stdin_reader_does_not_stop_other_goroutines():
    """stdin is a pipe that stays open with no data: one goroutine blocks in read(0) while
    another must keep ticking."""
    for cmd in ([str(go119("stdinticker"))], _goemu_cmd(go119("stdinticker"))):
        r, w = os.pipe()
        try:
            p = subprocess.run(cmd, stdin=r, capture_output=True, timeout=120, env=_env())
        finally:
            os.close(r)
            os.close(w)
        assert p.returncode == 0, p.stderr
        assert p.stdout.splitlines() == [b"tick 1", b"tick 2", b"tick 3", b"tick 4", b"tick 5", b"ticks done"]


def _serve_and_query(cmd, tmp_path, sig):
    portfile = tmp_path / "port"
    p = subprocess.Popen(cmd + ["0", str(portfile)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env=_env())
    try:
        assert p.stdout.readline() == b"listening\n"
        port = int(portfile.read_text())
        replies = []
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for path in ("/hello", "/count", "/count", "/nope"):
            conn.request("GET", path)
            resp = conn.getresponse()
            replies.append((resp.status, resp.read()))
        conn.close()
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return replies, b"listening\n" + out, p.returncode


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_server_answers_host_client_and_stops_on_signal(tmp_path, sig):
    native = _serve_and_query([str(go119("httpserve"))], tmp_path, sig)
    emu = _serve_and_query(_goemu_cmd(go119("httpserve")), tmp_path, sig)
    assert native[0][0] == (200, b"hello from goemu\n")
    assert emu == native


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2,
                                 signal.SIGWINCH])
def test_host_signal_reaches_signal_notify(sig):
    results = []
    for cmd in ([str(go119("selfsignal"))], _goemu_cmd(go119("selfsignal"))):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
        results.append((out, p.returncode))
    assert results[0] == results[1]
    assert results[0][1] == 0


def test_host_signal_default_action_kills_guest():
    statuses = []
    for cmd in ([str(go119("selfsignal")), "nonotify"], _goemu_cmd(go119("selfsignal"), "nonotify")):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        assert p.stdout.readline() == b"ready\n"
        time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=60)
        statuses.append(p.returncode)
    assert statuses == [-signal.SIGTERM, -signal.SIGTERM]     # a signal death, natively and under goemu


def test_follow_exec_runs_go_children_under_goemu():
    """Without --follow-exec the child is a host process (real pid, real clock); with it, the
    child runs under goemu too (deterministic: pid 1000, the virtual clock's year 2020)."""
    child = go119("printpid")
    plain = run_goemu(go119("execgo"), child, options=("--deterministic",))
    follow = run_goemu(go119("execgo"), child, options=("--deterministic", "--follow-exec"))
    assert plain.returncode == follow.returncode == 0
    assert follow.stdout == b'child stdout: "pid=1000 year=2020\\n"\nchild status: 0\n'
    assert b"year=2020" not in plain.stdout
    # a followed child's exit status reaches the parent as natively
    native = run_native(go119("execgo"), go119("exit3"))
    emu = run_goemu(go119("execgo"), go119("exit3"), options=("--follow-exec",))
    assert emu.stdout == native.stdout == b'child stdout: "bye\\n"\nchild status: 3 (exit status 3)\n'


def test_follow_exec_child_killed_by_signal(tmp_path):
    import sys as _sys
    _sys.path.insert(0, str(ROOT / "tests"))
    from tinyelf import make_elf
    segv = make_elf(b"\x48\x8b\x04\x25\x00\x00\x00\x00", tmp_path / "segv")   # mov rax, [0]
    native = run_native(go119("execgo"), segv)
    emu = run_goemu(go119("execgo"), segv, options=("--follow-exec",))
    assert b"signal: segmentation fault" in native.stdout
    assert emu.stdout == native.stdout


def test_pure_go_resolver_hosts_file_and_udp_dns():
    """/etc/hosts for localhost; a UDP query to the test's own DNS server on 127.0.0.1."""
    from dnsserver import DnsServer
    with DnsServer() as dns:
        native = run_native(go119("resolver"), dns.address)
        emu = run_goemu(go119("resolver"), dns.address)
        assert dns.queries >= 2
    assert native.returncode == emu.returncode == 0
    assert emu.stdout == native.stdout
    assert b"example.goemu.test: [10.1.2.3] err=<nil>" in emu.stdout


def test_closed_stdout_reaches_eof_while_guest_runs(tmp_path):
    """The guest closes its stdout and runs on (3 s): whoever reads the pipe sees EOF at once,
    natively and under goemu (goemu must not keep its own copy of the pipe open)."""
    import subprocess
    import sys
    import time

    from conftest import ROOT, go119

    for cmd in ([str(go119("closestdout"))],
                [sys.executable, "-m", "goemu", "run", str(go119("closestdout"))]):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=env)
        t0 = time.monotonic()
        out = p.stdout.read()           # returns at EOF
        eof_after = time.monotonic() - t0
        p.wait(timeout=60)
        assert out == b"closing stdout\n"
        assert eof_after < 2.5, (cmd, eof_after)   # long before the program's 3 s end
        assert p.stderr.read() == b"closestdout done\n"


def test_signals_after_the_guest_exits_do_not_kill_goemu():
    """A parent that keeps sending SIGIO (which Go ignores unless notified) while the program
    ends: natively the process exits 0; goemu must not die of a signal that arrives between
    the guest's exit and its own (Go's TestSpuriousWakeupsNeverHangSemasleep does this)."""
    import subprocess
    import sys
    import time

    from conftest import ROOT, go119, run_native

    native = run_native(go119("stdinticker"))
    for _ in range(3):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        p = subprocess.Popen([sys.executable, "-m", "goemu", "run", str(go119("stdinticker"))],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env)
        first = p.stdout.readline()          # the guest is running: its handlers are installed
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            p.send_signal(signal.SIGIO)
            time.sleep(0.0005)
        out = first + p.stdout.read()
        assert p.wait(timeout=60) == 0, p.stderr.read()
        assert out == native.stdout
