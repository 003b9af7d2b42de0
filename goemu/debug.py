"""goemu debug: an interactive, scriptable debugger for Go programs and the Go runtime
(commands: goemu.debughelp, also `goemu debug --help` and `help`).

This module is the session: the command loop (a script, a pipe, or a terminal with readline,
history and Enter repeating the last command), Ctrl-C, registers and expressions. The commands
are in goemu.debugrun (running, breakpoints, watchpoints) and goemu.debugviews (looking);
breakpoints, watchpoints and stepping themselves are goemu.engine's, shared with the gdb stub.
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import sys
from contextlib import contextmanager
from typing import TextIO

from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from unicorn import x86_const as X

from . import debughelp
from .cpu import FS_BASE
from .debugexpr import Context, ExprError, Value, evaluate
from .debugrun import RunCommands
from .debugviews import DebugError, ViewCommands
from .engine import Engine
from .errno import LinuxError
from .runtime_view import RuntimeView
from .trace import GPRS

REGS = {name: reg for name, reg in GPRS} | {"rip": X.UC_X86_REG_RIP, "fs_base": FS_BASE,
                                            "eflags": X.UC_X86_REG_EFLAGS}
REG_ALIASES = {"pc": "rip", "sp": "rsp", "fp": "rbp"}
LOW32 = {f"e{r[1:]}": r for r in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp")} | \
    {f"r{i}d": f"r{i}" for i in range(8, 16)}

__all__ = ["Debugger", "DebugError", "run_debugger"]


class Debugger(RunCommands, ViewCommands):
    def __init__(self, k, syms, layouts, out: TextIO = sys.stdout):
        self.k = k
        self.syms = syms
        self.view = RuntimeView(k, syms, layouts)
        self.out = out
        self.md = Cs(CS_ARCH_X86, CS_MODE_64)
        self.engine = Engine(k)
        self.engine.interrupt_check = self.interrupted
        self.bps = {}                 # number -> debugrun.Bp
        self.next_bp = 1
        self.thread = k.current
        self.goroutine: int | None = None     # selected with `goroutine N`
        self.values: list[int] = []           # print's $1, $2, ...
        self.started = False
        self.done = False
        self.last_x: tuple[str, int] | None = None
        self.last_line = ""
        self._hits: list[int] | None = None   # breakpoints whose condition held in the hook
        self._cond_error = None
        self._sigs = None             # goemu.traceargs.Signatures, made by the first finish

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

    # ---- registers and expressions ------------------------------------------------------
    def _alive(self) -> bool:
        return not self.done and self.thread is not None and self.thread.state != "dead"

    def _need_thread_any(self):
        if not self._alive():
            raise DebugError("the process is not running")

    def reg(self, reg: int) -> int:
        return self.k.get_reg(self.thread, reg)

    def reg_named(self, name: str, t=None, check_only: bool = False) -> int:
        """A register by name (rax, eax, pc, ...) or a convenience variable (g, m, p, goid) of
        thread t (default: the current one). KeyError: no such name."""
        name = REG_ALIASES.get(name, name)
        if name not in REGS and name not in LOW32 and name not in ("g", "m", "p", "goid"):
            raise KeyError(name)
        if check_only:
            return 0
        t = t or self.thread
        if self.done or t is None or t.state == "dead":
            raise DebugError("the process is not running")
        if name in REGS:
            return self.k.get_reg(t, REGS[name])
        if name in LOW32:
            return self.k.get_reg(t, REGS[LOW32[name]]) & 0xFFFFFFFF
        v = self.view
        g = v.current_g(t)
        if name == "g":
            return g
        if name == "goid":
            return v.goid_of(g) or 0
        m = v.field("g", g, "m") or 0
        return m if name == "m" else (v.field("m", m, "p") or 0)

    def eval(self, text: str, t=None) -> Value:
        def symbol(name):
            addr = self.syms.address_of(name)
            if addr is None:
                return None
            return addr, self.syms.size_of(name) or 8

        def read(addr, n):
            try:
                return self.k.mem.read(addr & (1 << 64) - 1, n)
            except (LinuxError, OverflowError, ValueError):
                raise ExprError(f"cannot read {n} bytes at {addr & (1 << 64) - 1:#x}") from None
        def reg(name):
            if name.isdigit():
                if not 0 < int(name) <= len(self.values):
                    raise ExprError(f"no value ${name} yet (print makes $1, $2, ...)")
                return self.values[int(name) - 1]
            return self.reg_named(name, t)
        try:
            return evaluate(text, Context(reg, symbol, read))
        except ExprError as e:
            raise DebugError(str(e)) from None

    def location(self, spec: str) -> int:
        """A breakpoint location: *EXPR, FILE:LINE, or an expression (a symbol, a number)."""
        spec = spec.strip()
        if spec.startswith("*"):
            return self.eval(spec[1:]).value & (1 << 64) - 1
        m = re.fullmatch(r"([\w./-]+\.(?:go|s)):(\d+)", spec)
        if m:
            return self.file_line_address(m.group(1), int(m.group(2)))
        return self.eval(spec).value & (1 << 64) - 1

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

    # ---- help ---------------------------------------------------------------------------------
    def cmd_help(self, arg: str) -> None:
        if not arg:
            self.say(debughelp.HELP.rstrip())
            return
        text = debughelp.command_help(arg.split()[0])
        if text is None:
            raise DebugError(f"no command {arg!r} (help lists them)")
        self.say(text)

    # ---- the command loop -------------------------------------------------------------------
    def execute(self, line: str, repeat: bool = False) -> bool:
        """Run one command; False means quit. With repeat, an empty line repeats the last
        repeatable command (x going on where it ended)."""
        line = line.split("#", 1)[0].strip()
        if not line:
            if not repeat or not self.last_line:
                return True
            line = self.last_line
            if line.startswith("x") and self.last_x is not None:
                line = f"x/{self.last_x[0]} {self.last_x[1]:#x}"
        word = re.match(r"[^\s/]*", line).group(0)
        rest = line[len(word):]
        fmt = ""
        if rest.startswith("/"):
            fmt, _, rest = rest[1:].partition(" ")
        cmd = debughelp.ALIASES.get(word, word)
        self.last_line = line if cmd in debughelp.REPEATABLE else ""
        arg = rest.strip()
        if cmd == "quit":
            return False
        if cmd == "x":
            self.cmd_x(fmt, arg)
        elif cmd == "print":
            self.cmd_print(arg, fmt)
        elif fmt:
            raise DebugError(f"{cmd} takes no /FORMAT")
        else:
            fn = getattr(self, f"cmd_{cmd}", None) if re.fullmatch(r"[a-z]+", cmd or "") else None
            if fn is None:
                raise DebugError(f"unknown command {word!r} (help lists them)")
            if cmd in ("break", "tbreak", "thread", "goroutine", "delete", "enable", "disable", "info"):
                arg = " ".join(shlex.split(arg)) if "'" in arg or '"' in arg else arg
            fn(arg)
        return True

    def run_line(self, line: str, repeat: bool = False) -> bool:
        """execute(), with a user's mistake as one line of error (never a traceback)."""
        try:
            return self.execute(line, repeat)
        except (DebugError, ValueError) as e:
            self.say(f"error: {e}")
        except KeyboardInterrupt:
            self.say("Quit")
        except Exception as e:      # a goemu bug: one line, and the session goes on
            if os.environ.get("GOEMU_DEBUG"):
                raise
            self.say(f"error: internal error in {line.strip()!r}: {type(e).__name__}: {e} "
                     "(set GOEMU_DEBUG=1 for a traceback)")
        return True

    def repl(self, lines, echo: bool) -> None:
        for line in lines:
            if echo and line.strip():
                self.say(f"(goemu) {line.rstrip()}")
            if not self.run_line(line):
                break

    # ---- reading from a terminal or a pipe ------------------------------------------------------
    def interact(self, stdin: TextIO, tty: bool) -> None:
        """Commands from stdin: over a pipe each is echoed; on a terminal with readline. An empty
        line repeats. Ctrl-C at the prompt asks for a second one (or quit, or end of input)."""
        hist = _readline_setup(self) if tty else None
        warned = False
        try:
            while True:
                try:
                    with self._sigint_at_prompt():
                        line = input("(goemu) ") if tty else stdin.readline()
                except KeyboardInterrupt:
                    if warned:
                        self.say("\n[quit]")
                        break
                    warned = True
                    self.say("\n^C: press Ctrl-C again, type quit or end the input to leave")
                    continue
                except EOFError:
                    break
                if not tty and not line:
                    break           # end of input
                warned = False
                if not tty and line.strip():
                    self.say(f"(goemu) {line.rstrip()}")
                if not self.run_line(line, repeat=True):
                    break
        finally:
            if hist:
                _readline_save(hist)

    @contextmanager
    def _sigint_at_prompt(self):
        """While reading a command, SIGINT raises KeyboardInterrupt; while the guest runs it is
        queued (goemu.hostio.HostSignals) and interrupted() turns it into a stop."""
        hs = self.k.host_signals
        if hs is None:
            yield
            return
        old = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, old)
            got = hs.take()     # the wake-up byte the prompt's SIGINT left in the pipe
            hs.pending = [s for s in got if s != signal.SIGINT] + hs.pending


def _readline_setup(dbg: Debugger) -> str | None:
    try:
        import readline
    except ImportError:
        return None
    hist = os.path.expanduser(os.environ.get("GOEMU_HISTORY", "~/.goemu_history"))
    try:
        readline.read_history_file(hist)
    except OSError:
        pass
    readline.set_history_length(1000)
    words = sorted({c[0] for c in debughelp.COMMANDS} | set(debughelp.ALIASES))
    names: list[str] = []

    def complete(text, state):
        if readline.get_begidx() == 0:
            pool = words
        else:
            if not names:
                names.extend(sorted({f.name for f in dbg.syms.functions()}))
            pool = names
        hits = [w for w in pool if w.startswith(text)][:200]
        return hits[state] if state < len(hits) else None
    readline.set_completer_delims(" \t*(+-")
    readline.set_completer(complete)
    readline.parse_and_bind("tab: complete")
    return hist


def _readline_save(hist: str) -> None:
    try:
        import readline
        readline.write_history_file(hist)
    except (ImportError, OSError):
        pass


def run_debugger(k, syms, layouts, script: TextIO | None, out: TextIO = sys.stdout) -> int:
    from .cpu import RIP
    dbg = Debugger(k, syms, layouts, out)
    k.start()
    try:
        pc = k.get_reg(k.current, RIP)
        dbg.say(f"goemu debug: {k.exe_path} ({syms.go_version or 'Go version unknown'}); "
                f"stopped at entry {pc:#x}: {dbg.where(pc)}  (help lists the commands)")
        if script is not None:
            dbg.repl(script, echo=True)
        else:
            dbg.interact(sys.stdin, sys.stdin.isatty())
    finally:
        k.finish()
    return k.exit_status or 0
