"""The labs (labs/*.md) run: every `$ ` command of a sheet is run as written (goemu as
`python -m goemu`, from the repository root), and what the sheet says to look for is checked on
that output. A lab whose observations stop being true fails here instead of misleading a
student."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from conftest import ROOT, TIMEOUT, esbuild, go119

LABS = ROOT / "labs"


@dataclass
class Event:
    icount: int
    m: str
    p: str
    g: str
    curg: str | None
    func: str
    args: dict
    ret: bool = False
    results: dict = field(default_factory=dict)
    caller: str = ""
    inlined_in: str | None = None
    stack: list = field(default_factory=list)


HEAD = re.compile(r"^\[(\d+)\] M(\S+) P(\S+) G(\S+)(?: curg=(\S+))? (\S+?)\((.*)$")


def _split(s: str) -> dict:
    """'a=1, b=f(x, y)' -> {'a': '1', 'b': 'f(x, y)'} (commas inside brackets kept)."""
    out, depth, cur = {}, 0, ""
    for ch in s + ",":
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            if "=" in cur:
                k, v = cur.strip().split("=", 1)
                out[k] = v
            cur = ""
        else:
            cur += ch
    return out


def _balanced(s: str) -> tuple[str, str]:
    """s starts just after '(': (inside, rest after the matching ')')."""
    depth = 1
    for i, ch in enumerate(s):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return s[:i], s[i + 1:]
    return s, ""


def parse_trace(text: str) -> list[Event]:
    events: list[Event] = []
    for line in text.splitlines():
        if line.startswith("    #") and events:
            events[-1].stack.append(line.split(None, 1)[1])
            continue
        if line.startswith("    --- goroutine") and events:
            events[-1].stack.append(line.strip())
            continue
        m = HEAD.match(line)
        if not m:
            continue
        ic, mm, pp, gg, curg, func, rest = m.groups()
        inside, after = _balanced(rest)
        ev = Event(int(ic), mm, pp, gg, curg, func, _split(inside))
        if after.startswith(" returned"):
            ev.ret = True
            r = after[len(" returned"):]
            if r.startswith(" ("):
                ev.results = _split(_balanced(r[2:])[0])
        else:
            inl = re.match(r" \[inlined in (\S+)\]", after)
            if inl:
                ev.inlined_in = inl.group(1)
            if "\u2190 " in after:
                ev.caller = after.split("\u2190 ", 1)[1]
        events.append(ev)
    return events


@dataclass
class Run:
    cmd: str
    proc: subprocess.CompletedProcess

    @property
    def out(self) -> str:
        return self.proc.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.proc.stderr.decode("utf-8", "replace")

    @property
    def events(self) -> list[Event]:
        return parse_trace(self.err)


def commands(sheet: str) -> list[str]:
    """The `$ ` lines of the sheet's code blocks, in order."""
    text = (LABS / sheet).read_text()
    out, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced and line.startswith("$ "):
            out.append(line[2:])
    return out


def run_sheet(sheet: str) -> list[Run]:
    esbuild("0.5.26")       # fail clearly when fixtures are missing
    go119("hello")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for k in list(env):
        if k.startswith(("GODEBUG", "GOMAXPROCS")):
            del env[k]
    runs = []
    for cmd in commands(sheet):
        argv = shlex.split(cmd)
        if argv[0] == "goemu":
            argv = [sys.executable, "-m", "goemu", *argv[1:]]
        elif argv[0] == "python3":
            argv = [sys.executable, *argv[1:]]
        p = subprocess.run(argv, capture_output=True, env=env, cwd=ROOT, timeout=TIMEOUT)
        assert p.returncode == 0, (cmd, p.stderr.decode()[-2000:])
        runs.append(Run(cmd, p))
    return runs


def first(events: list[Event], func: str, ret: bool = False, **args) -> Event:
    for e in events:
        if e.func == func and e.ret == ret and all(e.args.get(k) == v for k, v in args.items()):
            return e
    raise AssertionError(f"no {'return of ' if ret else ''}{func} {args or ''}")


def index(events: list[Event], e: Event) -> int:
    return next(i for i, x in enumerate(events) if x is e)


def test_lab1_rt0_to_main():
    start, stack = run_sheet("01-rt0-to-main.md")
    ev = start.events
    assert "0.5.26" in start.err.splitlines()      # esbuild prints its version on stderr
    order = [first(ev, "runtime.rt0_go"), first(ev, "runtime.args"), first(ev, "runtime.osinit"),
             first(ev, "runtime.schedinit"), first(ev, "runtime.procresize"),
             first(ev, "runtime.newproc", fn="runtime.main"), first(ev, "runtime.mstart"),
             first(ev, "runtime.main"), first(ev, "runtime.newm", fn="runtime.sysmon"),
             first(ev, "runtime.sysmon")]
    assert [e.icount for e in order] == sorted(e.icount for e in order)
    rt0, args, osinit, schedinit, procresize, newproc, mstart, main, newm, sysmon = order
    assert (rt0.m, rt0.p, rt0.g) == ("-", "-", "-") and rt0.caller == "0x2"
    assert all((e.m, e.p, e.g) == ("0", "-", "0") for e in (args, osinit, schedinit, procresize))
    assert procresize.args == {"nprocs": "2"}
    assert (newproc.p, newproc.g) == ("0", "0")
    assert main.g == "1" and main.caller.startswith("runtime.goexit+")
    assert (newm.g, newm.curg, newm.args.get("_p_")) == ("0", "G1", "nil")
    assert newm.caller.startswith("runtime.main.func1+")
    assert sysmon.m not in ("0", "-") and sysmon.p == "-" and sysmon.caller.startswith("runtime.mstart1+")
    s = stack.events[0].stack
    cut = s.index("--- goroutine G1 (m.curg), from its saved context ---")
    assert s[:cut] == ["runtime.newm", "runtime.main.func1", "runtime.systemstack"]
    assert "runtime.main" in s[cut:]


def test_lab2_threads_and_g0_stacks():
    tr, strace = run_sheet("02-threads-and-g0-stacks.md")
    ev = tr.events
    m0_gsignal = first(ev, "runtime.malg", stacksize="32768")
    assert m0_gsignal.p == "-" and m0_gsignal.caller.startswith("runtime.mpreinit+")
    assert first(ev, "runtime.malg", stacksize="2048").caller.startswith("runtime.newproc1+")
    newms = [e for e in ev if e.func == "runtime.newm" and not e.ret]
    assert [e.args["fn"] for e in newms] == ["runtime.sysmon", "runtime.mspinning", "nil"]
    allocs = [i for i, e in enumerate(ev) if e.func == "runtime.allocm" and not e.ret]
    assert len(allocs) == 3
    for i in allocs:
        j = next(k for k in range(i, len(ev)) if ev[k].func == "runtime.allocm" and ev[k].ret)
        sizes = [e.args["stacksize"] for e in ev[i:j] if e.func == "runtime.malg" and not e.ret]
        assert sizes == ["32768", "8192"]                # gsignal, then g0
        new_m = ev[j].results["~r2"]
        assert new_m.startswith("M")
        assert next(e for e in ev[j:] if e.func == "runtime.newosproc").args == {"mp": new_m}
    starts = [e for e in ev if e.func == "runtime.mstart" and e.m != "0"]
    assert len(starts) == 3
    clones = [l for l in strace.err.splitlines() if " clone(" in l]
    assert len(clones) == 3
    assert all("clone(CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, 0xc" in l
               for l in clones)
    assert "SETTLS" not in strace.err


def test_lab3_sysmon():
    loop, preempt, strace, pipes = run_sheet("03-sysmon.md")
    ev = loop.events
    sysmon = first(ev, "runtime.sysmon")
    assert sysmon.p == "-" and sysmon.m not in ("0", "-")
    retakes = [e for e in ev if e.func == "runtime.retake"]
    assert retakes and all(e.m == sysmon.m and e.p == "-" for e in retakes)
    assert all(e.caller.startswith("runtime.sysmon+") for e in ev if e.func == "runtime.usleep" and e.m == sysmon.m)

    ev = preempt.events
    assert preempt.out.splitlines()[0] == "main ran"
    assert first(ev, "runtime.preemptone").stack[1:3] == ["runtime.preemptall", "runtime.stopTheWorldWithSema"]
    by_sysmon = next(e for e in ev if e.func == "runtime.preemptone" and e.stack[1] == "runtime.retake")
    assert by_sysmon.p == "-" and by_sysmon.args == {"_p_": "P0"}
    assert 10_000_000 <= by_sysmon.icount < 20_000_000     # forcePreemptNS: 10 ms of virtual time
    i = index(ev, by_sysmon)
    m = ev[i + 1]
    assert m.func == "runtime.preemptM" and m.inlined_in == "runtime.preemptone"
    sig = next(e for e in ev[i:] if e.func == "runtime.doSigPreempt")
    assert sig.m == "0" and sig.g == "0" and sig.curg == sig.args["gp"]
    ap = next(e for e in ev[i:] if e.func == "runtime.asyncPreempt2")
    assert "G" + ap.g == sig.curg and ap.stack[:3] == ["runtime.asyncPreempt2", "runtime.asyncPreempt", "main.loop"]

    lines = strace.err.splitlines()
    assert "[1001] tgkill(1000, 1000, SIGURG) = 0" in lines
    assert any(l.startswith("[1000] --- SIGURG {si_signo=SIGURG, si_code=-6") for l in lines)

    ev = pipes.events
    polls = [i for i, e in enumerate(ev) if e.func == "runtime.netpoll" and not e.ret
             and e.caller.startswith("runtime.sysmon+")]
    assert polls
    found = []
    for i in polls:
        assert ev[i].args == {"delay": "0"} and ev[i].p == "-"
        r = next(e for e in ev[i:] if e.func == "runtime.netpoll" and e.ret and e.m == ev[i].m)
        found.append(r.results["~r0"])
    assert any(re.fullmatch(r"gList\(head=G\d+\)", f) for f in found)


def test_lab4_stack_growth():
    (tr,) = run_sheet("04-stack-growth.md")
    ev = tr.events
    grows = [e for e in ev if e.func == "runtime.newstack"]
    assert len(grows) >= 2
    for e in grows:
        assert e.g == "0" and e.curg == "G1"
        assert e.stack[:3] == ["runtime.newstack", "runtime.morestack",
                               "--- goroutine G1 (m.curg), from its saved context ---"]
        assert e.stack[3] != "runtime.morestack" and "." in e.stack[3]
    assert grows[0].stack[3] == "runtime.heapBits.forwardOrBoundary"
    assert grows[1].stack[3] == "regexp/syntax.(*compiler).rune"
    copies = [e for e in ev if e.func == "runtime.copystack" and not e.ret]
    sizes = [int(e.args["newsize"]) for e in copies]
    assert sizes[:2] == [4096, 8192]
    assert all(b == 2 * a for a, b in zip(sizes, sizes[1:]))
    assert all(e.args["gp"] == e.curg for e in copies)


def test_lab5_schedule():
    gen, one, two = run_sheet("05-schedule.md")
    ev = one.events
    execs = [e for e in ev if e.func == "runtime.execute"]
    assert len(execs) > 20 and {e.p for e in execs} == {"0"}
    assert sum(e.m == "0" for e in execs) > len(execs) // 2
    assert not [e for e in ev if e.func == "runtime.runqsteal"]
    rq = [e for e in ev if e.func == "runtime.runqget" and e.ret]
    assert rq and sum(e.results["gp"] != "nil" for e in rq) > 0.9 * len(rq)
    # findrunnable only when P0's queue is empty, and what it finds came from the global queue
    found = [e for e in ev if e.func == "runtime.findrunnable" and e.ret]
    assert len(found) <= 3
    for f in found:
        g = next(e for e in reversed(ev[:index(ev, f)]) if e.func == "runtime.globrunqget" and e.ret)
        assert g.m == f.m and g.results["~r2"] == f.results["gp"]

    ev = two.events
    execs = [e for e in ev if e.func == "runtime.execute"]
    assert {e.p for e in execs} == {"0", "1"}
    steals = [i for i, e in enumerate(ev) if e.func == "runtime.runqsteal" and not e.ret]
    assert steals and ev[steals[0]].args["stealRunNextG"] == "false"
    got = 0
    for i in steals:
        r = next((e for e in ev[i:] if e.func == "runtime.runqsteal" and e.ret and e.m == ev[i].m), None)
        if r is None:       # the process exited while this M was stealing: its last event
            assert not [e for e in ev[i + 1:] if e.m == ev[i].m]
            continue
        if r.results["~r3"] != "nil":
            got += 1
            f = next(e for e in ev[index(ev, r):] if e.func == "runtime.findrunnable" and e.ret and e.m == r.m)
            assert f.results["gp"] == r.results["~r3"]
    assert got >= 2
    g = first(ev, "runtime.globrunqget", ret=True)
    assert g.results["~r2"].startswith("G")
    assert (ROOT / "fixtures").exists() and Path("/tmp/goemu-lab5/out.js").stat().st_size > 0


def test_lab6_parking():
    chans, timers, pipes = run_sheet("06-parking.md")
    ev = chans.events
    park = first(ev, "runtime.gopark")
    assert park.g == "1" and park.args["reason"] == "14 (chan receive)"
    assert park.args["unlockf"] == "runtime.chanparkcommit"
    ready = first(ev, "runtime.goready", gp="G1")
    assert ready.g not in ("0", "1") and ready.caller.startswith("runtime.send+")
    back = next(e for e in ev[index(ev, park):] if e.func == "runtime.gopark" and e.ret and e.g == "1")
    assert back.p != park.p                                   # parked on P0, resumed on P1
    reasons = {e.args["reason"] for e in ev if e.func == "runtime.gopark" and not e.ret}
    assert {"17 (force gc (idle))", "12 (GC sweep wait)", "13 (GC scavenge wait)"} <= reasons

    ev = timers.events
    sleep = first(ev, "runtime.gopark", reason="19 (sleep)")
    assert sleep.args["unlockf"] == "runtime.resetForSleep"
    i = index(ev, sleep)
    poll = next(e for e in ev[i:] if e.func == "runtime.netpoll" and not e.ret)
    assert poll.p == "-" and int(poll.args["delay"]) > 0
    wake = next(e for e in ev[i:] if e.func == "runtime.goready")
    assert wake.args["gp"] == "G" + sleep.g and wake.caller.startswith("runtime.goroutineReady+")
    assert wake.icount > poll.icount

    ev = pipes.events
    io = first(ev, "runtime.gopark", reason="2 (IO wait)")
    assert io.caller.startswith("runtime.netpollblock+")
    i = index(ev, io)
    r = next(e for e in ev[i:] if e.func == "runtime.netpoll" and e.ret and e.results["~r0"] != "gList(head=nil)")
    assert r.results["~r0"] == f"gList(head=G{io.g})"
    assert next(e for e in ev[index(ev, r):] if e.func == "runtime.gopark" and e.ret).g == io.g
