"""goemu debug: an interactive, scriptable stepper for the Go runtime's own code (commands: see
goemu.debughelp.HELP, which is also `goemu debug --help`)."""
from __future__ import annotations

import re
import shlex
import sys
from typing import TextIO

from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from unicorn import x86_const as X

from .cpu import FS_BASE, RIP, RSP
from .engine import Engine
from .errno import LinuxError
from .runtime_view import RuntimeView
from .trace import GPRS

REGS = {name: reg for name, reg in GPRS} | {"rip": X.UC_X86_REG_RIP, "fs_base": FS_BASE}


class DebugError(Exception):
    pass


class Debugger:
    def __init__(self, k, syms, layouts, out: TextIO = sys.stdout):
        self.k = k
        self.syms = syms
        self.view = RuntimeView(k, syms, layouts)
        self.out = out
        self.md = Cs(CS_ARCH_X86, CS_MODE_64)
        self.engine = Engine(k)
        self.bps: dict[int, tuple[int, str]] = {}           # number -> (addr, spec)
        self.next_bp = 1
        self.thread = k.current
        self.started = False
        self.done = False

    # ---- output ----------------------------------------------------------------
    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def where(self, pc: int) -> str:
        hit = self.syms.lookup(pc)
        if not hit:
            return hex(pc)
        name, start = hit
        file, line = self.syms.file_line(pc)
        loc = f" {file.rsplit('/', 1)[-1]}:{line}" if file else ""
        return f"{name}+{pc - start:#x}{loc}"

    # ---- address parsing -----------------------------------------------------------
    def address(self, spec: str) -> int:
        spec = spec.strip()
        if spec.startswith("$"):
            reg = REGS.get(spec[1:])
            if reg is None:
                raise DebugError(f"no register {spec}")
            return self.reg(reg)
        if re.fullmatch(r"(0x)?[0-9a-fA-F]+", spec) and (spec.startswith("0x") or spec.isdigit()):
            return int(spec, 0)
        m = re.fullmatch(r"(.+):(\d+)", spec)
        if m and not spec.startswith("runtime."):
            return self.file_line_address(m.group(1), int(m.group(2)))
        addr = self.syms.address_of(spec)
        if addr is None:
            raise DebugError(f"no symbol {spec!r}")
        return addr

    def file_line_address(self, file: str, line: int) -> int:
        best = None
        for f in self.syms.functions():
            ffile, _ = self.syms.file_line(f.entry)
            if not ffile or not (ffile == file or ffile.endswith("/" + file)):
                continue
            code = self.syms.read(f.entry, f.end - f.entry) or b""
            for insn in self.md.disasm(code, f.entry):
                fl, ln = self.syms.file_line(insn.address)
                if ln == line and fl == ffile:
                    if best is None or insn.address < best:
                        best = insn.address
                    break
        if best is None:
            raise DebugError(f"no code at {file}:{line}")
        return best

    # ---- registers of the current thread ---------------------------------------------
    def reg(self, reg: int) -> int:
        return self.k.get_reg(self.thread, reg)

    # ---- breakpoints (goemu/engine.py holds the hooks) ------------------------------------
    def cmd_break(self, arg: str) -> None:
        if not arg:
            raise DebugError("break needs SYMBOL, ADDR or FILE:LINE")
        addr = self.address(arg)
        n = self.next_bp
        self.next_bp += 1
        self.bps[n] = (addr, arg)
        self.engine.add_breakpoint(addr)
        self.say(f"Breakpoint {n} at {addr:#x}: {self.where(addr)}")

    def cmd_delete(self, arg: str) -> None:
        nums = [int(arg)] if arg else list(self.bps)
        for n in nums:
            if n not in self.bps:
                raise DebugError(f"no breakpoint {n}")
            addr, _ = self.bps.pop(n)
            if not any(a == addr for a, _ in self.bps.values()):
                self.engine.remove_breakpoint(addr)

    # ---- running ------------------------------------------------------------------------
    def _resume(self) -> None:
        """Continue all threads until a breakpoint or the end."""
        t = self.thread
        if t is not None and t.state == "runnable" and self._at_bp(t):
            self.engine.muted = True   # step off the breakpoint we are stopped at
            try:
                self.engine._run_one(t)
            finally:
                self.engine.muted = False
        self._report_stop(self.engine.resume())

    def _at_bp(self, t) -> bool:
        pc = self.k.get_reg(t, RIP)
        temp = self.engine.temp
        return pc in self.engine.bps or (temp is not None and pc == temp[0])

    def _report_stop(self, stop) -> None:
        k = self.k
        if stop.kind == "exited":
            self.done = True
            self.say(f"[process exited with status {stop.status}]")
            return
        self.thread = k.threads[stop.tid]
        pc = self.reg(RIP)
        mid, pid, goid = self.view.gmp(self.thread)
        if stop.kind == "temp":
            label = "Temporary breakpoint"
        else:
            label = "Breakpoint " + str(next((n for n, (a, _) in self.bps.items() if a == stop.addr), "?"))
        self.say(f"{label}, tid {stop.tid} (M{mid} P{pid if pid is not None else '-'} G{goid}) at "
                 f"{pc:#x}: {self.where(pc)}")
        self.engine.clear_temp()

    def _run_to(self, addr: int) -> None:
        self.engine.set_temp(addr, self.thread.tid)
        self._resume()

    def cmd_run(self, arg: str) -> None:
        self.started = True
        self._resume()

    def _need_thread(self):
        t = self.thread
        if self.done or t is None or t.state == "dead":
            raise DebugError("the process is not running")
        if t.state != "runnable":
            raise DebugError(f"thread {t.tid} is blocked ({t.wait.what if t.wait else '?'}); "
                             "`continue` or pick another with `thread TID`")
        return t

    def cmd_stepi(self, arg: str, over: bool = False) -> None:
        n = int(arg) if arg else 1
        for _ in range(n):
            t = self._need_thread()
            pc = self.reg(RIP)
            insn = next(self.md.disasm(self.view.read(pc, 16), pc), None)
            if over and insn is not None and insn.mnemonic == "call":
                self._run_to(pc + insn.size)
                if self.done:
                    return
                continue
            stop = self.engine.step(t)
            if stop.kind == "exited":
                self._report_stop(stop)
                return
        if not self.done and self.thread.state != "dead":
            pc = self.reg(RIP)
            self.say(f"{pc:#x}: {self.where(pc)}    {self._insn_text(pc)}")

    def cmd_finish(self, arg: str) -> None:
        self._need_thread()
        frames = self.syms.unwind(self.view.u64, self.reg(RIP), self.reg(RSP), 2)
        if len(frames) < 2:
            raise DebugError("no caller frame to return to")
        self._run_to(frames[1].pc)

    # ---- views ----------------------------------------------------------------------------
    def _insn_text(self, pc: int) -> str:
        insn = next(self.md.disasm(self.view.read(pc, 16), pc), None)
        return f"{insn.mnemonic} {insn.op_str}".strip() if insn else "(bad)"

    def cmd_regs(self, arg: str) -> None:
        self._need_thread_any()
        names = [n for n, _ in GPRS] + ["rip", "fs_base"]
        for i in range(0, len(names), 3):
            self.say("  ".join(f"{n:>7} {self.reg(REGS[n]):#018x}" for n in names[i:i + 3]))

    def _need_thread_any(self):
        if self.done or self.thread is None or self.thread.state == "dead":
            raise DebugError("the process is not running")

    def cmd_x(self, fmt: str, arg: str) -> None:
        m = re.fullmatch(r"(\d*)([xdsi]?)([bhwg]?)", fmt)
        if not m:
            raise DebugError(f"bad format /{fmt}")
        count = int(m.group(1) or 1)
        kind = m.group(2) or "x"
        size = {"b": 1, "h": 2, "w": 4, "g": 8, "": 8}[m.group(3)]
        addr = self.address(arg)
        if kind == "s":
            try:
                s = self.k.mem.read_cstr(addr, 4096)
            except LinuxError:
                raise DebugError(f"cannot read {addr:#x}") from None
            self.say(f"{addr:#x}: {s.decode(errors='replace')!r}")
            return
        if kind == "i":
            for insn in list(self.md.disasm(self.view.read(addr, 16 * count), addr))[:count]:
                self.say(f"{insn.address:#x} <{self.where(insn.address)}>: {insn.mnemonic} {insn.op_str}")
            return
        try:
            raw = self.k.mem.read(addr, size * count)
        except LinuxError:
            raise DebugError(f"cannot read {addr:#x}") from None
        vals = [int.from_bytes(raw[i:i + size], "little", signed=(kind == "d"))
                for i in range(0, len(raw), size)]
        per_line = max(1, 16 // size)
        for i in range(0, len(vals), per_line):
            shown = " ".join((f"{v:#0{2 + 2 * size}x}" if kind == "x" else str(v)) for v in vals[i:i + per_line])
            self.say(f"{addr + i * size:#x}: {shown}")

    def cmd_disas(self, arg: str) -> None:
        if arg:
            addr = self.address(arg)
            hit = self.syms.lookup(addr)
            start = addr
            end = next((f.end for f in self.syms.functions() if hit and f.entry == hit[1]), addr + 64)
            end = min(end, start + 400)
        else:
            self._need_thread_any()
            start = self.reg(RIP)
            end = start + 64
        pc = self.reg(RIP) if not self.done and self.thread and self.thread.state != "dead" else None
        code = self.view.read(start, end - start)
        for insn in list(self.md.disasm(code, start))[:24]:
            mark = "=>" if insn.address == pc else "  "
            self.say(f"{mark} {insn.address:#x} <{self.where(insn.address)}>: {insn.mnemonic} {insn.op_str}")

    def cmd_bt(self, arg: str) -> None:
        self._need_thread_any()
        frames = self.syms.unwind(self.view.u64, self.reg(RIP), self.reg(RSP), int(arg) if arg else 50)
        if not frames:
            self.say("(no Go frames at this pc)")
        for i, f in enumerate(frames):
            loc = f" at {f.file}:{f.line}" if f.file else ""
            self.say(f"#{i:<2} {f.pc:#x} in {f.func}{loc}")
        # On the scheduler stack (g0) after a stack switch, go on with the user goroutine's
        # frames, from where the switch saved them (m.curg.sched).
        if frames and frames[-1].func in ("runtime.morestack", "runtime.systemstack", "runtime.mcall"):
            v = self.view
            g = v.current_g(self.thread)
            m = v.field("g", g, "m")
            curg = v.field("m", m, "curg") if m else None
            if curg and curg != g:
                pc, sp = v.field("g", curg, "sched.pc"), v.field("g", curg, "sched.sp")
                goid = v.field("g", curg, "goid", signed=True)
                if pc and sp:
                    self.say(f"--- goroutine G{goid} (m.curg), from its saved context ---")
                    for j, f in enumerate(self.syms.unwind(v.u64, pc, sp, 50), start=len(frames)):
                        loc = f" at {f.file}:{f.line}" if f.file else ""
                        self.say(f"#{j:<2} {f.pc:#x} in {f.func}{loc}")

    def cmd_threads(self, arg: str) -> None:
        for th in self.view.threads():
            cur = "*" if self.thread is not None and th["tid"] == self.thread.tid else " "
            m = f"M{th['m']}" if th["m"] is not None else "M?"
            p = f"P{th['p']}" if th["p"] is not None else "P-"
            g = f"G{th['g']}" if th["g"] is not None else "G-"
            curg = f" curg=G{th['curg']}" if th["curg"] else ""
            wait = f" ({th['wait']})" if th["wait"] else ""
            self.say(f"{cur} tid {th['tid']:<6} {m:<4} {p:<3} {g:<5} {th['state']}{wait}{curg}")

    def cmd_thread(self, arg: str) -> None:
        t = self.k.threads.get(int(arg)) if arg else None
        if t is None or t.state == "dead":
            raise DebugError(f"no live thread {arg}")
        self.thread = t
        self.say(f"[current thread is {t.tid}]")

    def cmd_goroutines(self, arg: str) -> None:
        gs = self.view.goroutines()
        for g in gs:
            why = f" [{g['waitreason']}]" if g["waitreason"] else ""
            m = f" M{g['m']}" if g["m"] is not None else ""
            self.say(f"  G{g['goid']:<5} {g['status']:<11}{why} start={g['start']} at={g['at']}{m}")
        self.say(f"{len(gs)} goroutines")

    def cmd_sched(self, arg: str) -> None:
        s = self.view.sched()
        if not s:
            raise DebugError("runtime.sched is not available (stripped binary?)")
        self.say("sched: " + " ".join(f"{k}={v}" for k, v in s.items() if k != "ps"))
        for p in s.get("ps", []):
            nxt = f" runnext=G{p['runnext']}" if p["runnext"] else ""
            m = f" M{p['m']}" if p["m"] is not None else ""
            self.say(f"  P{p['id']} {p['status']:<9} runq={p['runq']}{nxt} schedtick={p['schedtick']}{m}")

    def cmd_info(self, arg: str) -> None:
        parts = arg.split(None, 1)
        if len(parts) != 2 or parts[0] != "symbol":
            raise DebugError("usage: info symbol ADDR")
        addr = self.address(parts[1])
        self.say(f"{addr:#x} is {self.where(addr)}")

    # ---- the command loop -------------------------------------------------------------------
    ALIASES = {"b": "break", "r": "run", "c": "continue", "si": "stepi", "ni": "nexti",
               "q": "quit", "exit": "quit", "i": "info", "bt": "bt", "where": "bt"}

    def execute(self, line: str) -> bool:
        """Run one command; False means quit."""
        line = line.split("#", 1)[0].strip()
        if not line:
            return True
        if line.startswith("x/") or line == "x":
            fmt, _, arg = line[2:].partition(" ")
            self.cmd_x(fmt, arg)
            return True
        words = shlex.split(line)
        cmd, arg = words[0], " ".join(words[1:])
        cmd = self.ALIASES.get(cmd, cmd)
        if cmd == "quit":
            return False
        if cmd in ("run", "continue"):
            if self.done:
                raise DebugError("the process has exited")
            self.cmd_run(arg)
        elif cmd == "nexti":
            self.cmd_stepi(arg, over=True)
        else:
            fn = getattr(self, f"cmd_{cmd}", None)
            if fn is None:
                raise DebugError(f"unknown command {cmd!r} (see goemu debug --help)")
            fn(arg)
        return True

    def repl(self, lines, echo: bool) -> None:
        for line in lines:
            if echo and line.strip():
                self.say(f"(goemu) {line.rstrip()}")
            try:
                if not self.execute(line):
                    break
            except DebugError as e:
                self.say(f"error: {e}")


def run_debugger(k, syms, layouts, script: TextIO | None, out: TextIO = sys.stdout) -> int:
    dbg = Debugger(k, syms, layouts, out)
    k.start()
    try:
        pc = k.get_reg(k.current, RIP)
        dbg.say(f"goemu debug: {k.exe_path} ({syms.go_version or 'Go version unknown'}); "
                f"stopped at entry {pc:#x}: {dbg.where(pc)}")
        if script is not None:
            dbg.repl(script, echo=True)
        elif sys.stdin.isatty():
            while True:
                try:
                    line = input("(goemu) ")
                except EOFError:
                    break
                try:
                    if not dbg.execute(line):
                        break
                except DebugError as e:
                    dbg.say(f"error: {e}")
        else:
            dbg.repl(sys.stdin, echo=True)
    finally:
        k.finish()
    return k.exit_status or 0
