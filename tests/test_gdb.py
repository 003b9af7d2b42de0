"""`goemu run -g`: the real gdb (Debian's gdb 13, `make deps`) drives goemu through the remote
protocol, in batch mode with a timeout. Where it makes sense the same gdb script runs natively
(gdb starting the binary itself) and the answers are compared."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, esbuild, go119

GDB_TIMEOUT = 240
RUNTIME_GDB = next((p for p in ("/usr/lib/go-1.19/src/runtime/runtime-gdb.py",
                                "/usr/share/go-1.19/src/runtime/runtime-gdb.py") if os.path.exists(p)), None)
PRELUDE = "set pagination off\nset confirm off\nset width 0\n"


def gdb_path() -> str:
    gdb = shutil.which("gdb")
    assert gdb, "gdb is needed: make deps"
    return gdb


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


class Session:
    def __init__(self, goemu: subprocess.Popen, gdb: subprocess.CompletedProcess):
        self.goemu_rc = goemu.returncode
        self.out = gdb.stdout.decode(errors="replace")
        self.err = gdb.stderr.decode(errors="replace")
        self.guest_out = goemu.stdout.read().decode(errors="replace") if goemu.stdout else ""
        self.guest_err = goemu.stderr.read().decode(errors="replace") if goemu.stderr else ""

    def __repr__(self) -> str:
        return f"gdb stdout:\n{self.out}\ngdb stderr:\n{self.err}\ngoemu stderr:\n{self.guest_err}"


def under_goemu(binary, script: str, tmp_path: Path, args=(), options=(), interrupt_after=None,
                where: str | None = None, gdb_file: bool = True) -> Session:
    """goemu -g, then gdb -batch running `script` (the target command is prepended)."""
    where = where or str(free_port())
    goemu = subprocess.Popen([sys.executable, "-m", "goemu", "run", "-g", where, *options, str(binary),
                              *map(str, args)], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # wait for the listening line on goemu's stderr
        line = goemu.stderr.readline().decode()
        assert "waiting for gdb" in line, line
        target = f"target remote {where if not where.isdigit() else ':' + where}\n"
        cmds = tmp_path / "cmds.gdb"
        cmds.write_text(PRELUDE + target + script)
        return _gdb([str(binary)] if gdb_file else [], cmds, goemu, interrupt_after)
    finally:
        if goemu.poll() is None:
            goemu.kill()
        goemu.wait(timeout=30)


def _gdb(args, cmds: Path, goemu, interrupt_after) -> Session:
    gdb = subprocess.Popen([gdb_path(), "-nx", "-batch", "-x", str(cmds), *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    if interrupt_after is not None:
        time.sleep(interrupt_after)
        gdb.send_signal(signal.SIGINT)       # what Ctrl-C at gdb's terminal does
    out, err = gdb.communicate(timeout=GDB_TIMEOUT)
    done = subprocess.CompletedProcess(gdb.args, gdb.returncode, out, err)
    if goemu is not None:
        try:
            goemu.wait(timeout=60)
        except subprocess.TimeoutExpired:
            goemu.kill()      # the test then fails on what gdb printed
            goemu.wait()
    return Session(goemu, done) if goemu is not None else done


def native(binary, script: str, tmp_path: Path, args=()) -> str:
    cmds = tmp_path / "native.gdb"
    cmds.write_text(PRELUDE + script)
    p = subprocess.run([gdb_path(), "-nx", "-batch", "-x", str(cmds), "--args", str(binary),
                        *map(str, args)], capture_output=True, timeout=GDB_TIMEOUT)
    return p.stdout.decode(errors="replace")


def test_schedule_breakpoints_threads_and_backtraces(tmp_path):
    s = under_goemu(go119("goroutines"), "break runtime.schedule\ncontinue\ncontinue\ncontinue\n"
                    "info threads\nbt\nthread apply all bt 2\nkill\n", tmp_path)
    hits = re.findall(r"hit Breakpoint 1, runtime.schedule \(\) at runtime/proc.go:\d+|"
                      r"^Breakpoint 1, runtime.schedule \(\)", s.out, re.M)
    assert len(hits) == 3, s
    rows = re.findall(r"^\*?\s+(\d+)\s+Thread (\d+) \"goroutines\"", s.out, re.M)
    assert len(rows) >= 3, s
    assert "in runtime.mstart" in s.out, s         # bt of a thread in schedule
    per_thread = re.findall(r"^Thread \d+ \(Thread \d+.*\n#0 ", s.out, re.M)
    assert len(per_thread) == len(rows), s         # a frame for every thread
    assert "Remote target) killed" in s.out, s
    assert "Traceback" not in s.guest_err


def test_newosproc_clone_flags(tmp_path):
    script = ("break runtime.newosproc\ncontinue\nbreak runtime.clone\ncontinue\n"
              "x/wx $rsp+8\nkill\n")
    s = under_goemu(go119("hello"), script, tmp_path)
    assert "Breakpoint 1, runtime.newosproc" in s.out, s
    # CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_SYSVSEM|CLONE_THREAD, as natively
    flags = re.search(r"^0x[0-9a-f]+:\s+(0x[0-9a-f]+)", s.out, re.M)
    assert flags, s
    nat = re.search(r"^0x[0-9a-f]+:\s+(0x[0-9a-f]+)", native(go119("hello"), script.replace("continue", "run", 1),
                                                   tmp_path), re.M)
    assert nat and flags.group(1) == nat.group(1) == "0x00050f00", (flags, nat)


WATCH = "watch 'runtime.allglen'\ncontinue\nbt 2\ncontinue\nbt 2\np 'runtime.allglen'\nkill\n"


def _watch_hits(out: str) -> list[tuple[str, str, str]]:
    return re.findall(r"Old value = (\d+)\nNew value = (\d+)\n(\S+) \(", out)


def test_watchpoint_fires_where_native_gdb_says(tmp_path):
    s = under_goemu(go119("goroutines"), WATCH, tmp_path)
    ours = _watch_hits(s.out)
    theirs = _watch_hits(native(go119("goroutines"), WATCH.replace("continue", "run", 1), tmp_path))
    assert len(ours) == 2, s
    assert ours == theirs, (ours, theirs)
    frames = re.findall(r"^#1 .* in (\S+) ", s.out, re.M)
    assert frames and all(f == "runtime.newproc1" for f in frames), s


def test_ctrl_c_interrupts_a_spinning_program(tmp_path):
    s = under_goemu(go119("preempt"), "continue\ninfo threads\nbt 1\nkill\n", tmp_path,
                    args=["4000000000"], interrupt_after=8)
    assert "received signal SIGINT" in s.out, s
    assert "Thread" in s.out and "Remote target) killed" in s.out, s


def test_nil_dereference_stops_with_sigsegv_before_go_handles_it(tmp_path):
    s = under_goemu(go119("nilderef"), "continue\nbt 1\ncontinue\n", tmp_path)
    assert "received signal SIGSEGV, Segmentation fault." in s.out, s
    assert re.search(r"#0 .*main\.main \(\) at .*nilderef", s.out), s
    # passed on: Go's handler turns it into the panic and exit status 2
    assert "exited with code 02" in s.out, s
    assert "invalid memory address or nil pointer dereference" in s.guest_err
    nat = native(go119("nilderef"), "run\nbt 1\n", tmp_path)
    assert re.search(r"#0 .*main\.main \(\) at .*nilderef", nat)
    assert (re.search(r"SIGSEGV.*\n(.*)", s.out).group(1) == re.search(r"SIGSEGV.*\n(.*)", nat).group(1))


@pytest.mark.parametrize("binary", ["goroutines", "esbuild"])
def test_runtime_gdb_py_info_goroutines(tmp_path, binary):
    assert RUNTIME_GDB, "runtime-gdb.py is needed: make deps (golang-1.19-src)"
    path = go119("goroutines") if binary == "goroutines" else esbuild("0.5.26")
    bp = "runtime.gcStart" if binary == "esbuild" else "sync.(*WaitGroup).Wait"
    args = ["--version"] if binary == "esbuild" else []
    script = (f"source {RUNTIME_GDB}\nbreak '{bp}'\ncontinue\ninfo goroutines\n"
              "goroutine 1 bt\np $len('runtime.allgs')\nkill\n")
    if binary == "esbuild":   # --version makes no garbage: stop in main instead
        script = script.replace("runtime.gcStart", "main.main")
    s = under_goemu(path, script, tmp_path, args=args)
    rows = re.findall(r"^\*?\s+(\d+) (running|runnable|waiting|syscall|idle)", s.out, re.M)
    assert rows, s
    goids = [int(g) for g, _ in rows]
    assert 1 in goids, s
    assert re.search(r"\$1 = \d+", s.out), s
    n = int(re.search(r"\$1 = (\d+)", s.out).group(1))
    assert n >= len(rows), s
    assert "main.main" in s.out, s
    if binary == "goroutines":
        assert len(rows) >= 3, s


def test_unix_socket(tmp_path):
    sock = str(tmp_path / "gdb.sock")
    s = under_goemu(go119("hello"), "break main.main\ncontinue\ninfo threads\ncontinue\n", tmp_path, where=sock)
    assert "Breakpoint 1, main.main" in s.out, s
    assert "exited normally" in s.out, s
    assert "hello" in s.guest_out


def test_reverse_stepi_restores_pc_and_registers(tmp_path):
    regs = "info registers\ninfo registers fs_base gs_base mxcsr xmm0 xmm15\n"
    script = (f"break main.main\ncontinue\nstepi 5\n{regs}stepi\nprintf \"after=%#x\\n\", $pc\n"
              f"reverse-stepi\n{regs}"
              f"reverse-stepi 3\nstepi 3\n{regs}kill\n")
    s = under_goemu(go119("hello"), script, tmp_path, options=["--deterministic"])
    dumps = re.findall(r"^rax .*?^xmm15 .*?$", s.out, re.M | re.S)
    assert len(dumps) == 3, s
    assert dumps[0] == dumps[1] == dumps[2], s
    assert re.search(r"^fs_base\s+0x[1-9a-f]", dumps[0], re.M), s    # the M's TLS base
    # the stepi in between really moved, and reverse-stepi came back to the same pc
    pcs = re.findall(r"^rip\s+(0x[0-9a-f]+)", s.out, re.M)
    after = re.search(r"after=(0x[0-9a-f]+)", s.out)
    assert len(pcs) == 3 and len(set(pcs)) == 1 and after and after.group(1) != pcs[0], s


def test_reverse_continue_lands_on_the_previous_breakpoint_hit(tmp_path):
    script = ("break runtime.schedule\ncontinue\ncontinue\ninfo registers rip rsp\n"
              "p $_thread\ncontinue\nreverse-continue\ninfo registers rip rsp\np $_thread\nkill\n")
    s = under_goemu(go119("hello"), script, tmp_path, options=["--deterministic"])
    regs = re.findall(r"^(rip|rsp)\s+(0x[0-9a-f]+)", s.out, re.M)
    threads = re.findall(r"^\$\d+ = (\d+)", s.out, re.M)
    assert len(regs) == 4 and len(threads) == 2, s
    assert regs[:2] == regs[2:] and threads[0] == threads[1], s
    assert s.out.count("Breakpoint 1, runtime.schedule") >= 4 or "hit Breakpoint 1" in s.out, s


def test_malformed_packets_get_an_error_or_a_clean_close(tmp_path):
    """Random and truncated packets: each gets an answer (or a nack), and the connection stays
    usable: a real gdb attaches afterwards and runs the program to its end."""
    import random
    port = free_port()
    goemu = subprocess.Popen([sys.executable, "-m", "goemu", "run", "-g", str(port), str(go119("hello"))],
                             env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert "waiting for gdb" in goemu.stderr.readline().decode()
        rng = random.Random(10)
        c = socket.create_connection(("127.0.0.1", port), timeout=20)
        f = c.makefile("rb")

        def packet(body: bytes) -> bytes:
            return b"$" + body + b"#%02x" % (sum(body) & 0xFF)

        def reply() -> bytes:
            while True:
                ch = f.read(1)
                assert ch, "connection closed"
                if ch == b"$":
                    break
            data = b""
            while not data.endswith(b"#"):
                data += f.read(1)
            f.read(2)
            c.sendall(b"+")
            return data[:-1]

        prefixes = [b"m", b"M", b"X", b"g", b"G", b"p", b"P", b"Z0,", b"z2,", b"Z4,", b"vCont;", b"H",
                    b"qXfer:features:read:", b"qXfer:threads:read::", b"T", b"qThreadExtraInfo,",
                    b"QPassSignals:", b"bs", b"vCont?", b"q", b"Q", b"v"]
        for i in range(400):
            body = rng.choice(prefixes) + bytes(rng.choice(b"0123456789abcdef,:;=-xyz") for _ in
                                                range(rng.randrange(0, 24)))
            if body.startswith((b"vCont;c", b"vCont;s", b"vCont;C", b"vCont;S", b"c", b"s")):
                continue
            c.sendall(packet(body))
            assert f.read(1) == b"+"
            r = reply()
            assert r == b"" or r.startswith(b"E") or r, (body, r)
        # bad checksums and truncated packets: a nack, then the next packet works
        c.sendall(b"$g#00")
        assert f.read(1) == b"-"
        c.sendall(b"$m4000")           # truncated ...
        c.sendall(packet(b"qC"))      # ... then cut short by a new packet
        assert f.read(1) == b"-"
        c.sendall(packet(b"qC"))
        assert f.read(1) == b"+" and reply().startswith(b"QC")
        c.sendall(packet(b"X" + b"1" * 10000 + b",zz:"))
        assert f.read(1) == b"+" and reply() == b"E01"
        for bad in (b"vCont;s:zz", b"vCont;x", b"vCont;C", b"vCont;Cq1", b"Czz", b"vCont;", b"vCont;c:ffffff",
                    b"Z0,zz", b"Z2,1000,0", b"Z2,1000,100000", b"P99=00", b"p999", b"qXfer:features:read:x:0,1"):
            c.sendall(packet(bad))
            assert f.read(1) == b"+"
            r = reply()
            assert r.startswith(b"E") or r in (b"", b"OK"), (bad, r)
        c.sendall(packet(b"c"))
        assert f.read(1) == b"+"
        assert reply().startswith(b"W00")
        f.close()
        c.close()
        goemu.wait(timeout=60)
        assert goemu.returncode == 0
        err = goemu.stderr.read().decode()
        assert "Traceback" not in err and "internal error" not in err, err
    finally:
        if goemu.poll() is None:
            goemu.kill()
            goemu.wait()


def test_reverse_finish_returns_to_the_call(tmp_path):
    script = ("break runtime.allgadd\ncontinue\nbt 2\nreverse-finish\nx/i $pc\nbt 1\nkill\n")
    s = under_goemu(go119("goroutines"), script, tmp_path, options=["--deterministic"])
    ret = re.search(r"^#1  (0x[0-9a-f]+) in runtime.newproc1", s.out, re.M)
    at = re.search(r"^=> (0x[0-9a-f]+) <runtime.newproc1\+\d+>:\s+call\s+0x[0-9a-f]+ <runtime.allgadd>",
                   s.out, re.M)
    assert ret and at, s
    assert int(at.group(1), 16) < int(ret.group(1), 16) <= int(at.group(1), 16) + 16, s


def test_reverse_continue_to_the_previous_watchpoint_hit(tmp_path):
    script = ("watch 'runtime.allglen'\ncontinue\ninfo registers rip\ncontinue\ncontinue\n"
              "reverse-continue\np 'runtime.allglen'\nkill\n")
    s = under_goemu(go119("goroutines"), script, tmp_path, options=["--deterministic"])
    values = [int(v) for v in re.findall(r"^New value = (\d+)", s.out, re.M)]
    assert values == [1, 2, 3, 2], s        # forward to 3, then back to where it became 2
    assert re.search(r"^\$1 = 2$", s.out, re.M), s


def test_packet_framing_units():
    from goemu.gdb.packets import checksum, escape, expand_rle, unescape
    raw = bytes(range(256))
    assert unescape(escape(raw)) == raw
    assert b"$" not in escape(raw) and b"#" not in escape(raw)
    assert expand_rle(b"0* ") == b"0000"          # ' ' is 32: three more
    assert unescape(b"ab}") == b"ab"               # a dangling escape is dropped, not an error
    assert checksum(b"qSupported") == 0x37


def test_detach_lets_the_program_finish_and_reverse_needs_deterministic(tmp_path):
    s = under_goemu(go119("hello"), "break main.main\ncontinue\ndetach\n", tmp_path)
    assert "detached" in s.out and s.goemu_rc == 0 and "hello, world" in s.guest_out, s
    s = under_goemu(go119("hello"), "break main.main\ncontinue\nreverse-stepi\n", tmp_path)
    assert "Target remote does not support this command." in s.err, s


def test_exec_file_from_the_stub_and_one_thread_steps_alone(tmp_path):
    """gdb is given no file: it learns the program from qXfer:exec-file. A stepi moves the
    current thread only (all-stop, as gdbserver)."""
    script = ("break runtime.schedule\ncontinue\ncontinue\nthread apply all p/x $pc\nstepi\n"
              "thread apply all p/x $pc\nkill\n")
    s = under_goemu(go119("hello"), script, tmp_path, gdb_file=False)
    assert "Reading symbols from " + str(go119("hello")) in s.out, s
    blocks = re.findall(r"^Thread (\d+) \(Thread \d+.*\n\$\d+ = (0x[0-9a-f]+)", s.out, re.M)
    assert len(blocks) >= 6 and len(blocks) % 2 == 0, s
    half = len(blocks) // 2
    before, after = dict(blocks[:half]), dict(blocks[half:])
    current = re.search(r"^Thread (\d+) \S+ hit Breakpoint 1", s.out, re.M).group(1)
    assert before.keys() == after.keys() and before[current] != after[current], s
    assert all(before[t] == after[t] for t in before if t != current), s


def test_a_replay_that_diverges_keeps_the_present(capsys):
    """In process, with a replay that cannot match (another program): bs is an error reply,
    and the session goes on from where it was."""
    from goemu.gdb.packets import Connection
    from goemu.gdb.reverse import Reverse
    from goemu.gdb.stub import Stub
    from goemu.kernel import Kernel, Options
    from goemu.symbols import Symbols
    hello, other = str(go119("hello")), str(go119("goroutines"))
    k = Kernel(hello, [hello], [], Options(deterministic=True))
    a, b = socket.socketpair()
    stub = Stub(k, Connection(a), reverse=Reverse(lambda: Kernel(other, [other], [], Options(deterministic=True))))
    k.start()
    try:
        tid = k.current.tid
        assert stub.handle(b"Z0,%x,1" % Symbols(hello).address_of("main.main")) == "OK"
        assert stub.handle(b"vCont;c").endswith("swbreak:;")
        assert stub.handle(b"vCont;s:%x" % tid).startswith("T05")
        pc = stub.handle(b"p10")
        assert stub.handle(b"bs") == "E02"
        assert "replay diverged" in capsys.readouterr().err
        assert stub.k is k and stub.handle(b"p10") == pc
        assert stub.handle(b"z0,%x,1" % Symbols(hello).address_of("main.main")) == "OK"
        assert stub.handle(b"vCont;c") == "W00"
    finally:
        stub.k.finish()
        a.close()
        b.close()


def test_ctrl_c_during_a_replay_abandons_it(capsys):
    from goemu.gdb.packets import Connection
    from goemu.gdb.reverse import Reverse
    from goemu.gdb.stub import Stub
    from goemu.kernel import Kernel, Options
    from goemu.symbols import Symbols
    hello = str(go119("hello"))
    make = lambda: Kernel(hello, [hello], [], Options(deterministic=True))  # noqa: E731
    k = make()
    a, b = socket.socketpair()
    rev = Reverse(make)
    stub = Stub(k, Connection(a), reverse=rev)
    k.start()
    try:
        assert stub.handle(b"Z0,%x,1" % Symbols(hello).address_of("main.main")) == "OK"
        assert stub.handle(b"vCont;c").endswith("swbreak:;")
        pc = stub.handle(b"p10")
        rev.live_check = lambda: True          # as if gdb sent Ctrl-C while replaying
        assert stub.handle(b"bs") == "E02"
        assert "replay interrupted" in capsys.readouterr().err
        assert stub.k is k and stub.handle(b"p10") == pc
        rev.live_check = stub.conn.poll_interrupt
        assert stub.handle(b"bs").startswith("T05")    # and going back works afterwards
        assert stub.handle(b"p10") != pc
    finally:
        stub.k.finish()
        a.close()
        b.close()
