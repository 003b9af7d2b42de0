"""goemu debug sessions on real binaries: Ctrl-C, help, Enter repeating, readline, expressions,
conditional, temporary and disabled breakpoints, watchpoints, finish and its results,
goroutines, sched, print of runtime structures, and how a program killed by a signal ends.

Every observation is checked against something independent: the program's own output (its
traceback, its printed sums), register values, the instruction at a reported pc, or another
command's view of the same thing."""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

from conftest import ROOT, esbuild, go119, goemu_cli


def session(tmp_path, binary, commands: str, *args):
    script = tmp_path / "cmds"
    script.write_text(commands)
    p = goemu_cli("debug", "-x", script, binary, *args)
    assert "Traceback" not in p.stderr.decode(), p.stderr.decode()
    return p, p.stdout.decode()


def answers(out: str) -> dict[str, str]:
    """command -> its output (the lines after its echo), for the first time each appears."""
    res: dict[str, str] = {}
    parts = re.split(r"^\(goemu\) (.*)$", out, flags=re.M)
    for cmd, text in zip(parts[1::2], parts[2::2]):
        res.setdefault(cmd, text[1:] if text.startswith("\n") else text)
    return res


class Live:
    """An interactive session over pipes, read line by line."""

    def __init__(self, *argv, env=None):
        e = dict(os.environ)
        e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
        e.update(env or {})
        self.p = subprocess.Popen([sys.executable, "-m", "goemu", "debug", *map(str, argv)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, bufsize=1, env=e)
        self.q: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.p.stdout:
            self.q.put(line)
        self.q.put(None)

    def send(self, text: str) -> None:
        self.p.stdin.write(text)
        self.p.stdin.flush()

    def until(self, pred, timeout: float = 60) -> list[str]:
        got, end = [], time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.q.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            got.append(line)
            self.seen.append(line)
            if pred(line):
                return got
        raise AssertionError(f"not seen in time; got {''.join(got)[-2000:]}")

    def sigint(self) -> None:
        self.p.send_signal(signal.SIGINT)


def test_ctrl_c_stops_the_program_and_continue_goes_on():
    # preempt with a loop that never ends in a test's time: the goroutine running main.loop is
    # always _Grunning on its thread
    s = Live(go119("preempt"), 10**12)
    try:
        s.until(lambda l: l.startswith("goemu debug:"))
        s.send("run\n")
        s.until(lambda l: l.startswith("(goemu) run"))
        time.sleep(1.0)
        s.sigint()
        stop = s.until(lambda l: l.startswith("Interrupted"))[-1]
        assert "SIGINT" in stop and "main.loop+" in stop, stop
        s.send("goroutines\n")
        lines = s.until(lambda l: l.endswith("goroutines\n") and not l.startswith("("))
        loop = next(l for l in lines if "start=main.main.func1" in l)
        # the running goroutine is where its thread is, not at its stale g.sched (gopark)
        assert "_Grunning" in loop and "at=main.loop+" in loop and "gopark" not in loop, loop
        goid = int(re.search(r"G(\d+)", loop).group(1))
        tid = int(re.search(r" tid (\d+)", loop).group(1))
        lo, hi = (int(x, 16) for x in re.search(r"stack=\[(0x[0-9a-f]+), (0x[0-9a-f]+)\)", loop).groups())
        at = re.search(r"at=(\S+ \S+)", loop).group(1)
        s.send(f"thread {tid}\nprint $pc\nprint $sp\nprint $goid\ngoroutine {goid} bt\n")
        lines = s.until(lambda l: "runtime.goexit" in l)
        text = "".join(lines)
        assert f"<{at}>" in text                                   # the thread's own pc
        sp = int(re.search(r"\$2 = \d+ \((0x[0-9a-f]+)\)", text).group(1), 16)
        assert lo <= sp < hi                                       # its sp is inside [lo, hi)
        assert f"$3 = {goid}" in text
        assert re.search(r"#0 +0x[0-9a-f]+ in main\.loop at .*preempt/main\.go:4[45]", text), text
        # continue: the program goes on (it was not killed), and a second Ctrl-C stops it again
        s.send("continue\n")
        s.until(lambda l: l.startswith("(goemu) continue"))
        time.sleep(0.5)
        s.sigint()
        s.until(lambda l: l.startswith("Interrupted"))
        s.send("info symbol $pc\n")
        s.until(lambda l: " is " in l)
        # Ctrl-C at the prompt: the first asks, the second leaves cleanly
        time.sleep(0.5)
        s.sigint()
        s.until(lambda l: "press Ctrl-C again" in l)
        time.sleep(0.3)
        s.sigint()
        assert s.p.wait(30) == 0
        s.until(lambda l: "[quit]" in l)
        err = s.p.stderr.read()
        assert "Traceback" not in err and "internal error" not in err, err
    finally:
        if s.p.poll() is None:
            s.p.kill()
            s.p.wait()


def test_end_of_input_leaves_a_running_program():
    s = Live(go119("preempt"), 10**12)
    try:
        s.until(lambda l: l.startswith("goemu debug:"))
        s.send("break main.loop\nrun\n")
        s.until(lambda l: l.startswith("Breakpoint 1,"))
        s.p.stdin.close()
        assert s.p.wait(30) == 0
        assert "Traceback" not in s.p.stderr.read()
    finally:
        if s.p.poll() is None:
            s.p.kill()
            s.p.wait()


def test_help_enter_repeats_and_errors_are_one_line():
    s = Live(go119("workers"))
    try:
        s.until(lambda l: l.startswith("goemu debug:"))
        s.send("help\n")
        s.until(lambda l: l.startswith("The program's own stdout"))
        s.send("help x\n")
        got = "".join(s.until(lambda l: "Enter goes on" in l))
        assert "x/FMT EXPR" in got
        s.send("help nosuch\n")
        s.until(lambda l: l.startswith("error: no command"))
        s.send("break main.spin\nrun\nstepi\n")
        first = s.until(lambda l: l.startswith("0x"))[-1]
        s.send("\n")                         # Enter: stepi again
        second = s.until(lambda l: l.startswith("0x"))[-1]
        s.send("\n")
        third = s.until(lambda l: l.startswith("0x"))[-1]
        pcs = [int(x.split(":")[0], 16) for x in (first, second, third)]
        assert pcs[0] < pcs[1] < pcs[2] and all("main.spin+" in x for x in (first, second, third))
        s.send("x/2xg $rsp\n")
        a = s.until(lambda l: l.startswith("0x"))[-1]
        s.send("\n")                         # Enter: x goes on where it ended
        b = s.until(lambda l: l.startswith("0x"))[-1]
        rsp = int(a.split(":")[0], 16)
        assert int(b.split(":")[0], 16) == rsp + 16
        s.send("print *($rsp+16)\n")
        v = s.until(lambda l: l.startswith("$1 = "))[-1]
        assert int(b.split()[1], 16) == int(v.split()[2])    # the same memory both ways
        for bad in ("print (1+", "print nosuch.symbol", "x/s 0", "print 1/0", "break *",
                    "watch 5", "bogus", "x/zz $rsp", "goroutine 99999 bt", "thread abc",
                    "condition 42 $rax", "print *(uint32*)0"):
            s.send(bad + "\n")
            line = s.until(lambda l: not l.startswith(f"(goemu) {bad}"))[-1]
            assert line.startswith("error: "), (bad, line)
        s.send("delete\ncontinue\n")
        s.until(lambda l: l.startswith("[process exited with status 0]"))
        s.p.stdin.close()
        assert s.p.wait(30) == 0
        assert "total 2400240000" in "".join(s.seen)
        assert "Traceback" not in s.p.stderr.read()
    finally:
        if s.p.poll() is None:
            s.p.kill()
            s.p.wait()


def test_readline_history_on_a_terminal(tmp_path):
    """On a tty: readline edits the line, Up recalls the last command, history is saved."""
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update({"HOME": str(tmp_path), "TERM": "xterm", "PYTHONPATH": str(ROOT)})
        os.execv(sys.executable, [sys.executable, "-m", "goemu", "debug", str(go119("hello"))])
    out = b""

    def read_until(needle: bytes, timeout=60):
        nonlocal out
        end = time.monotonic() + timeout
        while needle not in out and time.monotonic() < end:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        assert needle in out, out[-1500:]

    try:
        read_until(b"(goemu) ")
        os.write(fd, b"help stepX\x7fi\r")       # a typo corrected with Backspace
        read_until(b"N instructions of the current thread")
        n = out.count(b"N instructions of the current thread")
        os.write(fd, b"\x1b[A\r")                # Up: the same command again
        end = time.monotonic() + 30
        while out.count(b"N instructions of the current thread") == n and time.monotonic() < end:
            out += os.read(fd, 4096)
        assert out.count(b"N instructions of the current thread") == n + 1
        os.write(fd, b"quit\r")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(fd)
    assert b"Traceback" not in out
    assert (tmp_path / ".goemu_history").read_text().splitlines()[-2:] == ["help stepi", "quit"]


def test_conditional_breakpoints_stop_only_when_the_condition_holds(tmp_path):
    # main.spin(id, in, out): Go 1.19's register ABI passes id in rax; four workers, ids 0-3
    p, out = session(tmp_path, go119("workers"),
                     "break main.spin if $rax == 9\n"          # never holds
                     "break main.spin if $rax == 2\n"
                     "break *main.spin if $rax*2+1 == (3+4) && $rsp != 0\n"   # holds for id 3
                     "info breakpoints\nrun\nprint $rax\nprint $goid\ngoroutines\n"
                     "continue\nprint $rax\nprint $goid\ninfo breakpoints\ncontinue\n")
    assert p.returncode == 0
    stops = re.findall(r"^Breakpoint (\d+), tid \d+ \(M\d+ P\d+ G(\d+)\) at (0x[0-9a-f]+): main\.spin\+0x0",
                       out, re.M)
    assert sorted(s[0] for s in stops) == ["2", "3"], out       # in the order the workers ran
    values = re.findall(r"^\$\d+ = (\d+)", out, re.M)
    assert [values[0], values[2]] == [stops[0][0], stops[1][0]]  # breakpoint 2 at rax 2, 3 at 3
    assert values[1] == stops[0][1] and values[3] == stops[1][1]   # $goid = the stop's G
    gor = answers(out)["goroutines"]
    running = [l for l in gor.splitlines() if l.startswith("*")]
    assert len(running) == 1 and f"G{stops[0][1]} " in running[0] and "at=main.spin+0x0" in running[0]
    assert "hit 1 time" in out and "stop only if $rax == 9" in out
    assert out.count("[process exited with status 0]") == 1
    assert "total 2400240000" in out                           # the program's own result


def test_condition_command_changes_a_breakpoint(tmp_path):
    p, out = session(tmp_path, go119("workers"),
                     "break main.spin\ncondition 1 $rax == 3\nrun\nprint $rax\ninfo breakpoints\n"
                     "condition 1\ncondition 1 $rax == 3\ncontinue\ninfo breakpoints\n")
    assert p.returncode == 0
    # one stop, with rax 3: the three other calls (ids 0-2, before or after) did not stop
    assert re.findall(r"^\$\d+ = (\d+)", out, re.M) == ["3"]
    assert out.count("Breakpoint 1, tid") == 1
    assert "Breakpoint 1 now unconditional." in out and "Breakpoint 1 now stops if $rax == 3." in out
    assert out.rstrip().endswith("hit 1 time")
    assert "total 2400240000" in out


def test_watchpoints_report_the_writing_instruction(tmp_path):
    p, out = session(tmp_path, go119("preempt"),
                     "watch main.result\nwatch *(uint32*)&main.finished\nrun\nx/i $pc\n"
                     "print main.result\ncontinue\nbt 2\ndelete\ncontinue\n", 1000)
    assert p.returncode == 0
    assert "sum 499500" in out                                  # the program's own print
    first, second = out.split("Hardware watchpoint")[3:5]
    assert "Old value = 0\nNew value = 499500" in first
    assert "Old value = 0\nNew value = 1" in second
    # the accessing instruction: a store to main.result, then the atomic store to finished;
    # the stop is right after it (gdb reports a watchpoint after the write)
    pc1, insn1 = re.search(r"accessed by (0x[0-9a-f]+): main\.loop\+\S+ main\.go:47\s+(.*)", first).groups()
    assert insn1.startswith("mov qword ptr [rip")
    stop1 = int(re.search(r"Stopped, tid \d+ .* at (0x[0-9a-f]+): main\.loop", first).group(1), 16)
    x = answers(out)["x/i $pc"]
    assert x.startswith(f"{stop1:#x} ")
    assert 0 < stop1 - int(pc1, 16) <= 15
    assert re.search(r"accessed by 0x[0-9a-f]+: main\.loop\+\S+ main\.go:48\s+xchg dword ptr", second)
    assert re.search(r"^\$1 = \d+ \(0x[0-9a-f]+\): 499500$", out, re.M)
    assert "#0  " in answers(out)["bt 2"] and "main.loop" in answers(out)["bt 2"]


def test_read_watchpoint_and_a_store_of_the_same_value(tmp_path):
    # main.n is read by the loop (rwatch); main.n is stored once with the value main parsed
    p, out = session(tmp_path, go119("preempt"),
                     "rwatch main.n\nrun\ndelete\nwatch -l &main.result\ncontinue\ncontinue\n", 1000)
    assert p.returncode == 0
    assert "Hardware read watchpoint 1: main.n\n\nValue = 1000" in out
    assert re.search(r"accessed by 0x[0-9a-f]+: main\.loop\+\S+ main\.go:44\s+cmp qword ptr \[rip", out)
    assert "Old value = 0\nNew value = 499500" in out


def test_goroutines_match_the_programs_own_traceback(tmp_path):
    p, out = session(tmp_path, go119("deadlock"),
                     "break runtime.fatalthrow\nrun\ngoroutines\ngoroutine 1 bt\ninfo symbol main.main\n"
                     "print G 1\ngoroutine 1\nprint g\ncontinue\n")
    assert p.returncode == 2
    a = answers(out)
    g1 = next(l for l in a["goroutines"].splitlines() if "G1 " in l)
    assert "_Gwaiting" in g1 and "[chan receive]" in g1 and "start=runtime.main" in g1
    assert "at=runtime.gopark+" in g1
    # the program's traceback (printed after the breakpoint) names the same wait and line
    err = p.stderr.decode()
    assert "goroutine 1 [chan receive]:\nmain.main()" in err
    own = re.search(r"deadlock/main\.go:(\d+) \+(0x[0-9a-f]+)", err)
    bt = a["goroutine 1 bt"]
    frame = re.search(r"(0x[0-9a-f]+) in main\.main at \S+deadlock/main\.go:(\d+)", bt)
    assert frame and frame.group(2) == own.group(1)
    entry = int(re.search(r"(0x[0-9a-f]+) is main\.main\+0x0", a["info symbol main.main"]).group(1), 16)
    assert int(frame.group(1), 16) - entry == int(own.group(2), 16)
    # print G 1 and print g (after selecting goroutine 1) are the same g
    assert "goid = 1\n" in a["print G 1"] and "atomicstatus = 4 (_Gwaiting)" in a["print G 1"]
    assert "waitreason = " in a["print G 1"] and "(chan receive)" in a["print G 1"]
    assert a["print G 1"].splitlines()[0] == a["print g"].splitlines()[0]


def test_sched_shows_the_run_queues_esbuild(tmp_path):
    """Go 1.14: runqput(_p_, gp, next) takes its arguments on the stack. After it returns,
    sched must show gp where runqput put it (runnext; the one it displaced in the local
    runq), and the idle P lists must agree with npidle."""
    goid = "print *(int64*)(*($rsp+16)+152)\n"       # gp.goid: go1.14's g.goid at 152
    p, out = session(tmp_path, esbuild("0.5.26"),
                     "break runtime.runqput\nrun\n" + goid + "print *(uint8*)($rsp+24)\nfinish\nsched\n"
                     "continue\n" + goid + "finish\nsched\ncontinue\n" + goid + "finish\nsched\n"
                     "goroutines\ndelete\ncontinue\n", "--version")
    assert p.returncode == 0 and "0.5.26" in out
    blocks = out.split("(goemu) sched\n")[1:]
    ids = [int(x) for x in re.findall(r"^\$\d+ = (\d+)$", out, re.M)]
    assert ids[0] == 1 and ids[1] == 1            # G1 (runtime.main), next=true
    gs = [ids[0], ids[2], ids[3]]
    for i, (g, block) in enumerate(zip(gs, blocks)):
        p0 = next(l for l in block.splitlines() if l.startswith("  P0 "))
        assert f"runnext=G{g} " in p0, (g, block)
        npidle = int(re.search(r"npidle=(\d+)", block).group(1))
        pidle = re.search(r"idle Ps \(pidle\): (.*)", block).group(1)
        assert (0 if pidle == "(none)" else len(pidle.split())) == npidle
        if i == 2:                                  # the new G displaced the previous runnext
            assert p0.endswith(f"runq=1: G{gs[1]}")
    gor = answers(out)["goroutines"]
    assert re.search(r"G1 +_Grunning .* \(M on g0\) stack=\[0x[0-9a-f]+, 0x[0-9a-f]+\) M0 tid \d+", gor)
    assert re.search(rf"G{gs[2]} +_Grunnable", gor)


def test_print_runtime_structures_and_go_strings_esbuild(tmp_path):
    p, out = session(tmp_path, esbuild("0.5.26"),
                     "break runtime.newproc\nrun\ncontinue\nprint g\nprint $g\nprint m\nprint $m\n"
                     "print p\nprint sched\nprint M 0\nprint P 0\nx/s runtime.buildVersion\n"
                     "print runtime.buildVersion\nx/16xb *(runtime.buildVersion)\n"
                     "x/s *(runtime.buildVersion)\nprint/x 0x10 + 2*3 - (4 << 1)\nprint -5\n"
                     "delete\ncontinue\n", "--version")
    assert p.returncode == 0
    a = answers(out)
    g = a["print g"]
    assert g.startswith("runtime.g at 0x") and "fields from DWARF" in g
    gaddr = int(g.split()[2], 16)
    assert f"({gaddr:#x})" in a["print $g"]
    assert "goid = 1\n" in g and "atomicstatus = 2 (_Grunning)" in g
    assert re.search(r"startpc = 0x[0-9a-f]+ <runtime\.main\+0x0", g)
    assert "stktopsp = " in g and "gcAssistBytes = " in g      # fields only DWARF knows
    maddr = int(re.search(r"^  m = (0x[0-9a-f]+)", g, re.M).group(1), 16)
    assert a["print m"].startswith(f"runtime.m at {maddr:#x}") and f"({maddr:#x})" in a["print $m"]
    assert "  id = 0\n" in a["print m"] and a["print M 0"].splitlines()[0] == a["print m"].splitlines()[0]
    assert "status = 1 (_Prunning)" in a["print p"]
    assert a["print P 0"].splitlines()[0] == a["print p"].splitlines()[0]
    assert "goidgen = " in a["print sched"] and "npidle = " in a["print sched"]
    # the Go string runtime.buildVersion: x/s on its header, print by symbol, x/s on its bytes
    assert re.search(r'Go string \{ptr=0x[0-9a-f]+, len=8\} "go1\.14\.2"', a["x/s runtime.buildVersion"])
    assert a["print runtime.buildVersion"].rstrip().endswith(': "go1.14.2"')
    hexbytes = bytes(int(b, 16) for b in a["x/16xb *(runtime.buildVersion)"].split(":")[1].split())
    assert hexbytes.startswith(b"go1.14.2")
    s = a["x/s *(runtime.buildVersion)"]
    assert re.match(r'0x[0-9a-f]+: "go1\.14\.2', s)                 # no NUL: it runs on
    assert a["print/x 0x10 + 2*3 - (4 << 1)"].strip() == "$4 = 0xe"
    assert a["print -5"].strip() == "$5 = -5"


BAD = ["print (1+", "print nosuch.symbol", "print $nosuch", "print $7", "print 1/0", "print 5 %",
       "print *(uint32*)", "print *(float*)$rsp", "print G", "print G x", "print M 99", "print P 99",
       "print G 424242", "x", "x/s 0", "x/zz $rsp", "x/0xg $rsp", "x/99999xb $rsp", "x/4xg 0xdeadbeef0000",
       "x/i 0", "disas 0x10", "break", "break *", "break nosuch.go:12", "break main.main if (",
       "break main.main if $nosuch == 1", "condition", "condition 99 $rax", "condition x",
       "delete 99", "delete x", "tbreak", "tbreak nosuch.go:3", "enable 99", "disable x",
       "watch", "watch 5", "watch -l", "watch *0", "rwatch $rax",
       "thread", "thread abc", "thread 99999", "goroutine abc", "goroutine 99999 bt",
       "goroutine 1 foo", "info", "info nosuch", "info symbol", "help nosuch", "bogus",
       "stepi x", "nexti 1 2", "bt x", "regs/x", "x/s", "print/q 1", "'unbalanced"]


def test_bad_input_is_one_line_of_error(tmp_path):
    """Every mistake, before the run, at a stop and after the exit: one `error:` line, the
    prompt back, the session and the program going on."""
    cmds = BAD + ["break main.main", "run"] + BAD + ["delete", "continue"] + BAD
    p, out = session(tmp_path, go119("hello"), "\n".join(cmds) + "\n")
    assert p.returncode == 0
    assert "internal error" not in out
    a = re.split(r"^\(goemu\) .*$", out, flags=re.M)[1:]
    echoes = re.findall(r"^\(goemu\) (.*)$", out, flags=re.M)
    for cmd, text in zip(echoes, a):
        if cmd in BAD:
            lines = text.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), (cmd, text)
    assert "Breakpoint 1, tid" in out and "[process exited with status 0]" in out
    assert "hello" in out.lower()


def test_access_watchpoint_and_a_one_byte_watch(tmp_path):
    # a 1-byte watch inside the 4-byte atomic store; an access watchpoint on main.result sees
    # the loop's store (old/new) and main's load for its Printf (value), in that order
    p, out = session(tmp_path, go119("preempt"),
                     "watch *(uint8*)&main.finished\nawatch main.result\nrun\ncontinue\ncontinue\n"
                     "continue\ninfo watchpoints\n", 1000)
    assert p.returncode == 0
    hits = out.split("\n\nHardware ")[1:]
    assert hits[0].startswith("access (read/write) watchpoint 2") and "New value = 499500" in hits[0]
    assert hits[1].startswith("watchpoint 1") and "Old value = 0\nNew value = 1" in hits[1]
    assert "xchg dword ptr" in hits[1]
    assert hits[2].startswith("access (read/write) watchpoint 2") and "Value = 499500" in hits[2]
    assert re.search(r"accessed by 0x[0-9a-f]+: main\.main\+\S+ main\.go:71\s+mov \w+, qword ptr \[rip", hits[2])
    assert out.index("Value = 499500\naccessed") < out.index("sum 499500")   # before the Printf
    assert "(1 byte)\n        hit 1 time" in out and "(8 bytes)\n        hit 2 times" in out


def test_finish_returns_from_this_frame_not_a_recursive_one(tmp_path):
    # main.depth(n) recurses 100000 deep (n in rax): stopped in depth(99990), finish must come
    # back when *that* call returns (result 99990 in rax), not at the first return to the same
    # address (depth(0) into depth(1)) — though the stack was copied (grown) in between
    p, out = session(tmp_path, go119("recursion"),
                     "break main.depth if $rax == 99990\nrun\ndelete\nprint $g\nprint *($g+8)\n"
                     "finish\nprint $rax\nprint *($g+8)\n")
    assert p.returncode == 0
    assert "Run till exit from main.depth" in out
    assert re.search(r"^Returned, tid \d+ \(M\d+ P\d+ G1\) at 0x[0-9a-f]+: main\.depth\+", out, re.M)
    vals = re.findall(r"^\$\d+ = (\d+)", out, re.M)
    assert vals[2] == "99990"
    assert "Value returned: ~r0=99990\n" in out     # the result finish read is rax's
    assert vals[1] != vals[3]            # g.stack.hi moved: copystack ran during the finish


def test_stripped_binary_uses_the_builtin_layouts(tmp_path):
    import shutil
    objcopy = shutil.which("objcopy")
    assert objcopy, "binutils (objcopy) is needed: make deps"
    stripped = tmp_path / "esbuild-stripped"
    subprocess.run([objcopy, "--strip-all", str(esbuild("0.5.26")), str(stripped)], check=True)
    p, out = session(tmp_path, stripped, "break runtime.newproc\nrun\ncontinue\nprint g\nprint $goid\n"
                     "goroutines\nsched\nprint sched\ncontinue\n", "--version")
    assert p.returncode == 0
    a = answers(out)
    assert "fields from goemu's go1.14.2 table" in a["print g"]
    assert "  goid = 1\n" in a["print g"] and "atomicstatus = 2 (_Grunning)" in a["print g"]
    assert a["print $goid"].strip() == "$1 = 1"
    for cmd in ("goroutines", "sched", "print sched"):
        assert a[cmd].startswith("error: ") and "stripped" in a[cmd] and a[cmd].count("\n") == 1


def test_tbreak_disable_enable_and_info_breakpoints(tmp_path):
    # workers calls main.spin(id) once per worker, ids 0-3 (rax under Go 1.19's register ABI)
    p, out = session(tmp_path, go119("workers"),
                     "break main.main\ndisable 1\ntbreak main.spin\nbreak main.spin\ndisable 3\n"
                     "info symbol main.spin\ninfo breakpoints\nrun\nprint $rax\ninfo watchpoints\n"
                     "info break\nenable 3\ncontinue\nprint $rax\ndisable\ncontinue\n"
                     "info breakpoints\nenable 9\n")
    assert p.returncode == 0
    a = answers(out)
    spin = int(re.match(r"(0x[0-9a-f]+) is main\.spin\+0x0", a["info symbol main.spin"]).group(1), 16)
    assert a["tbreak main.spin"].strip() == f"Temporary breakpoint 2 at {spin:#x}: main.spin+0x0 main.go:20"
    rows = a["info breakpoints"].splitlines()
    assert rows[0].split() == ["Num", "Type", "Disp", "Enb", "Address", "What"]
    assert rows[1].split()[:5] == ["1", "breakpoint", "keep", "n", f"{int(a['break main.main'].split()[3][:-1], 16):#018x}"]
    assert rows[2].split() == ["2", "breakpoint", "del", "y", f"{spin:#018x}", "main.spin+0x0", "main.go:20"]
    assert rows[3].split() == ["3", "breakpoint", "keep", "n", f"{spin:#018x}", "main.spin+0x0", "main.go:20"]
    # the disabled breakpoint on main.main never stopped the program: the temporary one did,
    # once, and is gone
    first = a["run"].splitlines()[-1]
    assert re.match(r"Temporary breakpoint 2, tid \d+ \(M\d+ P\d+ G\d+\) at "
                    rf"{spin:#x}: main\.spin\+0x0", first), a["run"]
    assert "Breakpoint 1," not in out and out.count("Temporary breakpoint 2,") == 1
    assert a["info watchpoints"].strip() == "No breakpoints or watchpoints."
    rows = a["info break"].splitlines()
    assert [r.split()[0] for r in rows[1:]] == ["1", "3"] and "hit" not in a["info break"]
    # breakpoint 3 enabled: the next call of spin, another worker, stops there
    assert re.search(rf"^Breakpoint 3, tid \d+ .* at {spin:#x}: main\.spin\+0x0", a["continue"], re.M)
    ids = re.findall(r"^\$\d+ = (\d+)$", out, re.M)
    assert len(ids) == 2 and ids[0] != ids[1] and {ids[0], ids[1]} <= {"0", "1", "2", "3"}
    # all disabled: the two remaining calls do not stop; the program's own result is whole
    assert out.count("Breakpoint 3,") == 1 and "total 2400240000" in out
    assert out.count("[process exited with status 0]") == 1
    final = answers(out.split("(goemu) disable\n", 1)[1])["info breakpoints"]
    assert re.search(r"^1 +breakpoint +keep n .*\n3 +breakpoint +keep n .*main\.spin\+0x0 main\.go:20\n"
                     r" +hit 1 time$", final, re.M), final
    assert a["enable 9"].strip() == "error: no breakpoint 9"


def test_finish_prints_the_values_returned(tmp_path):
    # Go 1.19, register ABI: main.spin(2) returns the sum workers prints as "worker 2 sum N";
    # the call parks and resumes three times (perhaps on other Ms): finish follows goroutine
    p, out = session(tmp_path, go119("workers"),
                     "break main.spin if $rax == 2\nrun\ndelete\nfinish\nprint $rax\ncontinue\n")
    assert p.returncode == 0
    a = answers(out)
    goid = re.search(r"^Breakpoint 1, tid \d+ \(M\d+ P\d+ G(\d+)\)", a["run"], re.M).group(1)
    fin = a["finish"].splitlines()
    assert fin[0] == "Run till exit from main.spin"
    assert re.match(rf"Returned, tid \d+ \(M\d+ P\d+ G{goid}\) at 0x[0-9a-f]+: main\.main\.func1\+", fin[1])
    printed = re.search(r"^worker 2 sum (\d+)$", out, re.M).group(1)
    assert fin[2] == f"Value returned: ~r0={printed}"
    assert a["print $rax"].startswith(f"$1 = {printed} ")
    # Go 1.14, stack ABI: os.(*File).Write(b) returns n, err after the results' stack slots;
    # esbuild --version writes "0.5.26\n" (7 bytes) to stderr with one Write
    p, out = session(tmp_path, esbuild("0.5.26"),
                     "break os.(*File).Write\nrun\nfinish\ncontinue\n", "--version")
    assert p.returncode == 0
    err = p.stderr.decode()
    assert err == "0.5.26\n"
    fin = answers(out)["finish"].splitlines()
    assert fin[0] == "Run till exit from os.(*File).Write"
    assert re.match(r"Returned, tid \d+ \(M\d+ P\d+ G1\) at 0x[0-9a-f]+: fmt\.Fprintf\+", fin[1])
    assert fin[2] == f"Value returned: n={len(err)} err=nil"


def test_a_program_killed_by_a_signal_kills_goemu_debug(tmp_path):
    """As goemu run: the guest's signal death is goemu's (the native run is the oracle); a Go
    panic is an exit with status 2, not a signal death."""
    native = subprocess.run([str(go119("nilderef"))], capture_output=True)
    assert native.returncode == 2
    p, out = session(tmp_path, go119("nilderef"), "run\n")
    assert p.returncode == native.returncode
    assert "[process exited with status 2]" in out and "before" in out
    assert p.stderr.decode().startswith("panic: runtime error: invalid memory address or nil pointer")
    # selfsignal nonotify has no handler for SIGTERM: the Go runtime re-raises it with SIG_DFL
    results = []
    for argv in ([str(go119("selfsignal")), "nonotify"], None):
        if argv is None:
            s = Live(go119("selfsignal"), "nonotify")
            try:
                s.until(lambda l: l.startswith("goemu debug:"))
                s.send("run\n")
                s.until(lambda l: l == "ready\n")
                s.p.send_signal(signal.SIGTERM)
                s.until(lambda l: l.startswith("[process exited"))
                s.send("info symbol main.main\n")        # the session goes on, then ends
                s.until(lambda l: " is main.main+0x0" in l)
                s.p.stdin.close()
                results.append(s.p.wait(30))
                err = s.p.stderr.read()
            finally:
                if s.p.poll() is None:
                    s.p.kill()
                    s.p.wait()
            assert "[process exited killed by signal 15]\n" in s.seen
            assert err == "goemu: guest terminated by SIGTERM: Terminated\n"
        else:
            n = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            assert n.stdout.readline() == "ready\n"
            n.send_signal(signal.SIGTERM)
            n.stdout.read()
            results.append(n.wait(30))
    assert results == [-signal.SIGTERM, -signal.SIGTERM]
