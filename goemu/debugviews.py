"""goemu debug's looking commands: regs, x, disas, bt, threads, goroutines, goroutine N,
sched, print and info. They read guest memory and registers and never run the guest."""
from __future__ import annotations

import re

from .cpu import RIP, RSP
from .debugexpr import TYPES, ExprError
from .errno import LinuxError
from .gostructs import format_struct, repr_gostring
from .trace import GPRS

STRING_LIMIT = 200          # bytes x/s shows of one string (gdb's `print elements`)


class DebugError(Exception):
    pass


class ViewCommands:
    """Mixed into goemu.debug.Debugger (self.k, syms, view, md, thread, say, where, ...)."""

    # ---- helpers ------------------------------------------------------------------------
    def _read(self, addr: int, n: int) -> bytes:
        try:
            return self.k.mem.read(addr, n)
        except (LinuxError, OverflowError, ValueError):
            raise DebugError(f"cannot read {n} bytes at {addr & (1 << 64) - 1:#x}") from None

    def _readable(self, addr: int, limit: int) -> bytes:
        """Up to limit bytes from addr, as far as memory is readable."""
        try:
            return self.k.mem.read(addr, limit)
        except (LinuxError, OverflowError, ValueError):
            pass
        out = bytearray()
        while len(out) < limit:
            step = min(4096 - ((addr + len(out)) & 4095), limit - len(out))
            try:
                out += self.k.mem.read(addr + len(out), step)
            except (LinuxError, OverflowError, ValueError):
                break
        return bytes(out)

    def _frames(self, frames, start: int = 0) -> None:
        for i, f in enumerate(frames, start=start):
            loc = f" at {f.file}:{f.line}" if f.file else ""
            self.say(f"#{i:<2} {f.pc:#x} in {f.func}{loc}")

    def _need_view(self, glob: str | None = None) -> None:
        if not self.view.ok:
            raise DebugError("no runtime struct layouts for this binary (" +
                             "; ".join(self.view.lay.notes) + ")")
        if glob is not None and glob not in self.view.lay.globals:
            raise DebugError(f"{glob} has no address (no .symtab: a stripped binary)")

    # ---- registers and memory -------------------------------------------------------------
    def cmd_regs(self, arg: str) -> None:
        self._need_thread_any()
        names = [n for n, _ in GPRS] + ["rip", "fs_base"]
        for i in range(0, len(names), 3):
            self.say("  ".join(f"{n:>7} {self.reg_named(n):#018x}" for n in names[i:i + 3]))

    def cmd_x(self, fmt: str, arg: str) -> None:
        m = re.fullmatch(r"(\d*)([xdusic]?)([bhwg]?)", fmt)
        if not m:
            raise DebugError(f"bad format /{fmt}: [count][x|d|u|s|i|c][b|h|w|g]")
        count = int(m.group(1) or 1)
        if not 0 < count <= 4096:
            raise DebugError(f"count {count}: 1 to 4096 units at a time")
        kind = m.group(2) or "x"
        size = {"b": 1, "h": 2, "w": 4, "g": 8, "": 1 if kind == "c" else 8}[m.group(3)]
        if not arg:
            raise DebugError("x needs an address (an expression: x/4xg $rsp)")
        addr = self.eval(arg).value & (1 << 64) - 1
        if kind == "s":
            end = self._x_strings(addr, count)
        elif kind == "i":
            insns = list(self.md.disasm(self._readable(addr, 16 * count), addr))[:count]
            if not insns:
                raise DebugError(f"cannot disassemble at {addr:#x}")
            for insn in insns:
                self.say(f"{insn.address:#x} <{self.where(insn.address)}>: {insn.mnemonic} {insn.op_str}")
            end = insns[-1].address + insns[-1].size
        else:
            raw = self._read(addr, size * count)
            vals = [int.from_bytes(raw[i:i + size], "little", signed=(kind == "d"))
                    for i in range(0, len(raw), size)]
            per_line = max(1, 16 // size) if kind != "c" else 8
            for i in range(0, len(vals), per_line):
                if kind == "c":
                    shown = " ".join(f"{v:3d} {repr_gostring(bytes([v]))[1:-1]!s:<4}" for v in vals[i:i + per_line])
                else:
                    shown = " ".join((f"{v:#0{2 + 2 * size}x}" if kind == "x" else str(v))
                                     for v in vals[i:i + per_line])
                self.say(f"{addr + i * size:#x}: {shown}")
            end = addr + size * count
        self.last_x = (fmt, end)      # Enter goes on from here, as gdb's x does

    def _x_strings(self, addr: int, count: int) -> int:
        """x/s: a Go string header {ptr, len} is followed to its bytes; otherwise the bytes at
        addr up to a NUL (Go's string data has none: then STRING_LIMIT bytes, like gdb)."""
        for _ in range(count):
            hdr = self._readable(addr, 16)
            if len(hdr) == 16:
                ptr, n = int.from_bytes(hdr[:8], "little"), int.from_bytes(hdr[8:], "little")
                if 0 < n <= 1 << 24 and ptr >= 4096:
                    data = self._readable(ptr, min(n, STRING_LIMIT))
                    if data and _looks_like_text(data):
                        more = "..." if n > len(data) else ""
                        self.say(f"{addr:#x}: Go string {{ptr={ptr:#x}, len={n}}} "
                                 f"{repr_gostring(data)}{more}")
                        addr += 16
                        continue
            data = self._readable(addr, STRING_LIMIT + 1)
            if not data:
                raise DebugError(f"cannot read {addr:#x}")
            nul = data.find(b"\0")
            if nul >= 0:
                text, more, step = data[:nul], "", nul + 1
            else:
                text = data[:STRING_LIMIT]
                more, step = ("..." if len(data) > STRING_LIMIT else ""), len(text)
            self.say(f"{addr:#x}: {repr_gostring(text)}{more}")
            addr += step
        return addr

    def cmd_disas(self, arg: str) -> None:
        if arg:
            addr = self.eval(arg).value
            hit = self.syms.lookup(addr)
            start = addr
            end = next((f.end for f in self.syms.functions() if hit and f.entry == hit[1]), addr + 64)
            end = min(max(end, start + 1), start + 400)
        else:
            self._need_thread_any()
            start = self.reg(RIP)
            end = start + 64
        pc = self.reg(RIP) if self._alive() else None
        code = self._readable(start, end - start)
        insns = list(self.md.disasm(code, start))[:24]
        if not insns:
            raise DebugError(f"cannot disassemble at {start:#x}")
        for insn in insns:
            mark = "=>" if insn.address == pc else "  "
            self.say(f"{mark} {insn.address:#x} <{self.where(insn.address)}>: {insn.mnemonic} {insn.op_str}")

    # ---- stacks -------------------------------------------------------------------------------
    def cmd_bt(self, arg: str) -> None:
        n = self._int(arg, 50)
        if self.goroutine is not None:
            self._goroutine_bt(self.goroutine, n)
            return
        self._need_thread_any()
        frames = self.syms.unwind(self.view.u64, self.reg(RIP), self.reg(RSP), n)
        if not frames:
            self.say("(no Go frames at this pc)")
        self._frames(frames)
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
                    self._frames(self.syms.unwind(v.u64, pc, sp, n), len(frames))

    def _goroutine_bt(self, goid: int, n: int = 50) -> None:
        g = self._g(goid)
        pos = self.view.position(g)
        self.say(f"goroutine {goid}: {self._pos_text(pos)}")
        frames = self.syms.unwind(self.view.u64, pos["pc"], pos["sp"], n) if pos["pc"] else []
        if not frames:
            self.say("(no Go frames)")
        self._frames(frames)

    def _pos_text(self, pos: dict) -> str:
        how = {"thread": f"running on tid {pos['tid']}", "g0": f"its M (tid {pos['tid']}) is on g0; "
               "from g.sched", "syscall": "in a syscall; from g.syscallpc", "sched": "from g.sched"}
        return f"{pos['pc']:#x} {self.where(pos['pc'])} ({how[pos['from']]})"

    def _g(self, goid: int) -> int:
        self._need_view("runtime.allgs")
        g = self.view.g_by_goid(goid)
        if g is None:
            raise DebugError(f"no goroutine {goid} in allgs")
        return g

    # ---- threads and goroutines -----------------------------------------------------------------
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
        t = self.k.threads.get(self._int(arg, -1)) if arg else None
        if t is None or t.state == "dead":
            raise DebugError(f"no live thread {arg}")
        self.thread = t
        self.goroutine = None
        self.say(f"[current thread is {t.tid}]")

    def cmd_goroutines(self, arg: str) -> None:
        self._need_view("runtime.allgs")
        gs = self.view.goroutines()
        cur = self.view.current_g(self.thread) if self._alive() else 0
        for g in gs:
            why = f" [{g['waitreason']}]" if g["waitreason"] else ""
            m = f" M{g['m']}" if g["m"] is not None else ""
            tid = f" tid {g['tid']}" if g["tid"] is not None else ""
            mark = "*" if g["g"] == cur or g["goid"] == self.goroutine else " "
            at = f"{self.where(g['pc'])}" if g["pc"] else "-"
            if g["from"] == "g0":
                at += " (M on g0)"
            self.say(f"{mark} G{g['goid']:<5} {g['status']:<11}{why} start={g['start']} at={at} "
                     f"stack=[{g['lo']:#x}, {g['hi']:#x}){m}{tid}")
        self.say(f"{len(gs)} goroutines")

    def cmd_goroutine(self, arg: str) -> None:
        """goroutine [N [bt [DEPTH]]]: select goroutine N (its thread, when one runs it) or show
        its backtrace."""
        words = arg.split()
        if not words:
            if self.goroutine is not None:
                goid = self.goroutine
            else:
                self._need_thread_any()
                goid = self.view.gmp(self.thread)[2]
            self._goroutine_bt(goid, 1)
            return
        goid = self._int(words[0])
        if len(words) > 1:
            if words[1] not in ("bt", "backtrace", "where"):
                raise DebugError("usage: goroutine N [bt [DEPTH]]")
            self._goroutine_bt(goid, self._int(words[2], 50) if len(words) > 2 else 50)
            return
        pos = self.view.position(self._g(goid))
        if pos["from"] == "thread":
            self.thread = self.k.threads[pos["tid"]]
        self.goroutine = goid
        self.say(f"[current goroutine is {goid}: {self._pos_text(pos)}]")

    def cmd_sched(self, arg: str) -> None:
        self._need_view()
        s = self.view.sched(detail=True)
        if not s:
            raise DebugError("runtime.sched is not available (stripped binary?)")
        counts = ("runqsize", "npidle", "nmspinning", "nmidle", "nmidlelocked", "nmsys", "mcount",
                  "gcwaiting", "stopwait", "sysmonwait", "goidgen")
        self.say("sched: " + " ".join(f"{k}={s[k]}" for k in counts if k in s))
        gl = lambda ids: " ".join(f"G{i}" for i in ids) or "(empty)"     # noqa: E731
        self.say(f"  global runq: {gl(s['runq'])}")
        self.say(f"  idle Ps (pidle): {' '.join(f'P{i}' for i in s['pidle']) or '(none)'}")
        self.say(f"  idle Ms (midle): {' '.join(f'M{i}' for i in s['midle']) or '(none)'}")
        for p in s.get("ps", []):
            nxt = f" runnext=G{p['runnext']}" if p["runnext"] else ""
            m = f" M{p['m']}" if p["m"] is not None else ""
            self.say(f"  P{p['id']} {p['status']:<9}{m} schedtick={p['schedtick']}{nxt} "
                     f"runq={p['runq']}: {gl(p['runq_goids'])}")

    # ---- print -------------------------------------------------------------------------------------
    STRUCT_WORDS = {"g": "g", "m": "m", "p": "p", "sched": "schedt", "schedt": "schedt"}

    def cmd_print(self, arg: str, fmt: str = "") -> None:
        arg = arg.strip()
        if fmt not in ("", "x", "d"):
            raise DebugError(f"bad format /{fmt}: print/x or print/d")
        if not arg:
            raise DebugError("print needs an expression, or g, m, p, sched, G N, M N, P N")
        words = arg.split()
        if words[0] in self.STRUCT_WORDS and len(words) == 1:
            self._print_struct(self.STRUCT_WORDS[words[0]], self._struct_addr(words[0]))
            return
        if words[0] in ("G", "M", "P") and len(words) == 2:
            key = words[0].lower()
            self._print_struct(key, self._by_id(key, self._int(words[1])))
            return
        v = self.eval(arg)
        self.values.append(v.value)
        n = len(self.values)
        val = v.value
        if fmt == "x":
            text = f"{val & (1 << 64) - 1:#x}" if val < 0 else f"{val:#x}"
        elif fmt == "d":
            text = str(val)
        else:
            text = f"{val}" if -4096 < val < 4096 else f"{val} ({val & (1 << 64) - 1:#x})"
            name = self.syms.lookup(val) if 0 < val < 1 << 48 else None
            if name:
                text += f" <{self.where(val)}>"
        sym = re.fullmatch(r"[^\s()*&+\-$]+", arg) and self.syms.address_of(arg)
        if sym and self.syms.lookup(sym) is None:       # a data symbol: show what is there
            size = self.syms.size_of(arg) or 8
            text += ": " + self._data_text(sym, size)
        self.say(f"${n} = {text}")

    def _data_text(self, addr: int, size: int) -> str:
        raw = self._readable(addr, min(size, 64))
        if size == 16 and len(raw) == 16:
            ptr, n = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")
            data = self._readable(ptr, min(n, STRING_LIMIT)) if 0 < n <= 1 << 24 else b""
            if n == 0 and ptr == 0:
                return '""'
            if data and _looks_like_text(data):
                return repr_gostring(data) + ("..." if n > len(data) else "")
        if size in (1, 2, 4, 8) and len(raw) == size:
            return str(int.from_bytes(raw, "little"))
        return " ".join(f"{b:02x}" for b in raw) + (" ..." if size > len(raw) else "")

    def _struct_addr(self, word: str) -> int:
        self._need_view()
        v = self.view
        if word in ("sched", "schedt"):
            addr = v.lay.globals.get("runtime.sched")
            if addr is None:
                raise DebugError("no runtime.sched symbol (stripped binary?)")
            return addr
        if self.goroutine is not None and word == "g":
            return self._g(self.goroutine)
        self._need_thread_any()
        g = v.current_g(self.thread)
        if not g:
            raise DebugError(f"thread {self.thread.tid} has no g yet (before runtime·settls)")
        if word == "g":
            return g
        m = v.field("g", g, "m")
        if word == "m":
            if not m:
                raise DebugError("g.m is nil")
            return m
        p = v.field("m", m, "p") if m else 0
        if not p:
            raise DebugError("this M holds no P (m.p is nil)")
        return p

    def _by_id(self, key: str, ident: int) -> int:
        self._need_view()
        v = self.view
        if key == "g":
            return self._g(ident)
        self._need_view("runtime.allp" if key == "p" else "runtime.allm")
        if key == "p":
            for p in v._slice("runtime.allp"):
                if p and v.field("p", p, "id", signed=True) == ident:
                    return p
            raise DebugError(f"no P {ident} in allp")
        m = v.u64(v.lay.globals["runtime.allm"]) if "runtime.allm" in v.lay.globals else 0
        seen = set()
        while m and m not in seen:
            seen.add(m)
            if v.field("m", m, "id", signed=True) == ident:
                return m
            m = v.field("m", m, "alllink") or 0
        raise DebugError(f"no M {ident} in allm")

    def _print_struct(self, key: str, addr: int) -> None:
        lay = self.view.lay
        name = {"g": "runtime.g", "m": "runtime.m", "p": "runtime.p", "schedt": "runtime.schedt"}[key]
        src = "fields from DWARF" if lay.source == "dwarf" else f"fields from goemu's {lay.go_version} table"
        self.say(f"{name} at {addr:#x} ({src}):")

        def where(pc: int):
            return self.where(pc) if self.syms.lookup(pc) else None
        for line in format_struct(lay, key, addr, self.view.read, where):
            self.say(line)

    # ---- info ---------------------------------------------------------------------------------------
    def cmd_info(self, arg: str) -> None:
        parts = arg.split(None, 1)
        what = parts[0] if parts else ""
        if what in ("b", "break", "breakpoints", "watchpoints", "watch"):
            self.info_breakpoints(watch_only=what.startswith("watch"))
            return
        if what in ("r", "registers"):
            if len(parts) > 1:
                for name in parts[1].split():
                    self.say(f"{name.lstrip('$'):>7} {self.reg_named(name.lstrip('$')):#018x}")
                return
            self.cmd_regs("")
            return
        if what in ("threads",):
            self.cmd_threads("")
            return
        if what in ("goroutines",):
            self.cmd_goroutines("")
            return
        if what == "symbol" and len(parts) == 2:
            addr = self.eval(parts[1]).value
            self.say(f"{addr:#x} is {self.where(addr)}")
            return
        raise DebugError("usage: info breakpoints|watchpoints|registers [REG...]|threads|"
                         "goroutines|symbol EXPR")

    @staticmethod
    def _int(text: str, default: int | None = None) -> int:
        if not text and default is not None:
            return default
        try:
            return int(text, 0)
        except ValueError:
            raise DebugError(f"not a number: {text!r}") from None


def _looks_like_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(data) - 3 or e.reason != "unexpected end of data":
            return False
        text = data[:e.start].decode("utf-8")     # cut inside a character by a length limit
    return all(ch.isprintable() or ch in "\n\t\r" for ch in text)


__all__ = ["ViewCommands", "DebugError", "TYPES", "ExprError"]
