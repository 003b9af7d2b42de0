"""The Go runtime's own view of itself, read from guest memory: the current G, M and P of a
guest thread, the scheduler (schedt and the Ps), all goroutines, all Ms.

Layouts come from goemu.gotypes (DWARF, or the built-in table for the Go version); the current
g of a thread is at FS_BASE-8, where the runtime keeps it (rt0_go, settls).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .cpu import FS_BASE, RIP, RSP
from .errno import LinuxError
from .gotypes import Layouts, pstatus_name, read_struct, status_name
from .symbols import Symbols

if TYPE_CHECKING:
    from .kernel import Kernel
    from .thread import Thread


class RuntimeView:
    def __init__(self, k: "Kernel", syms: Symbols, layouts: Layouts):
        self.k = k
        self.syms = syms
        self.lay = layouts
        self.ok = layouts.source != "none"

    # ---- memory ------------------------------------------------------------
    def read(self, addr: int, n: int) -> bytes:
        try:
            return self.k.mem.read(addr, n)
        except LinuxError:
            return b"\0" * n

    def u64(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 8), "little")

    def field(self, struct: str, addr: int, path: str, signed: bool = False) -> int | None:
        off = self.lay.offsets.get(struct, {}).get(path)
        if off is None or not addr:
            return None
        size = self.lay.sizes[struct][path]
        return int.from_bytes(self.read(addr + off, size), "little", signed=signed)

    # ---- per thread ----------------------------------------------------------
    def current_g(self, t: "Thread") -> int:
        fs = self.k.get_reg(t, FS_BASE)
        return self.u64(fs - 8) if fs >= 8 else 0

    def gmp(self, t: "Thread") -> tuple[int | None, int | None, int | None]:
        """(M id, P id, goid) of what thread t runs now; None where there is none."""
        if not self.ok:
            return None, None, None
        g = self.current_g(t)
        if not g:
            return None, None, None
        goid = self.field("g", g, "goid", signed=True)
        m = self.field("g", g, "m")
        mid = self.field("m", m, "id", signed=True) if m else None
        p = self.field("m", m, "p") if m else None
        pid = self.field("p", p, "id", signed=True) if p else None
        return mid, pid, goid

    def where(self, t: "Thread") -> dict:
        """What thread t runs now, for a trace event: {"g": g pointer, "m", "p", "goid",
        "curg" (goid of m.curg, the user goroutine the M serves; 0 when none), "curg_ptr"}."""
        out = {"g": 0, "m": None, "p": None, "goid": None, "curg": None, "curg_ptr": 0}
        if not self.ok:
            return out
        g = self.current_g(t)
        out["g"] = g
        if not g:
            return out
        out["goid"] = self.field("g", g, "goid", signed=True)
        m = self.field("g", g, "m")
        if m:
            out["m"] = self.field("m", m, "id", signed=True)
            p = self.field("m", m, "p")
            out["p"] = self.field("p", p, "id", signed=True) if p else None
            cg = self.field("m", m, "curg") or 0
            out["curg_ptr"] = cg
            out["curg"] = self.field("g", cg, "goid", signed=True) if cg else 0
        return out

    def goid_of(self, g: int) -> int | None:
        return self.field("g", g, "goid", signed=True) if g else None

    # ---- global state -----------------------------------------------------------
    def _slice(self, name: str) -> list[int]:
        base = self.lay.globals.get(name)
        if base is None:
            return []
        ptr, length = self.u64(base), self.u64(base + 8)
        if not ptr or length > 1 << 20:
            return []
        raw = self.read(ptr, 8 * length)
        return [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw), 8)]

    def glist(self, head: int, limit: int = 10000) -> list[int]:
        """goids along a g.schedlink chain from g pointer `head` (a gQueue or gList)."""
        out, seen = [], set()
        while head and head not in seen and len(out) < limit:
            seen.add(head)
            out.append(self.goid_of(head))
            head = self.field("g", head, "schedlink") or 0
        return out

    def _chain(self, struct: str, head: int, link: str, limit: int = 4096) -> list[int]:
        """The ids of the Ms or Ps along a link field (m.schedlink, p.link) from `head`."""
        out, seen = [], set()
        while head and head not in seen and len(out) < limit:
            seen.add(head)
            out.append(self.field(struct, head, "id", signed=True))
            head = self.field(struct, head, link) or 0
        return out

    def local_runq(self, p: int) -> list[int]:
        """goids in P p's local run queue, head first (runnext not included)."""
        head, tail = self.field("p", p, "runqhead") or 0, self.field("p", p, "runqtail") or 0
        off = self.lay.offsets.get("p", {}).get("runq")
        if off is None:
            return []
        slots = self.lay.sizes["p"]["runq"] // 8
        n = (tail - head) & 0xFFFFFFFF
        if n > slots:
            return []
        return [self.goid_of(self.u64(p + off + 8 * ((head + i) % slots))) for i in range(n)]

    def ps(self, detail: bool = False) -> list[dict]:
        out = []
        for p in self._slice("runtime.allp"):
            if not p:
                continue
            v = read_struct(self.lay, "p", self.read, p, ["id", "status", "runqhead", "runqtail",
                                                           "runnext", "schedtick", "m"])
            runnext = v.get("runnext", 0)
            out.append({
                "id": v.get("id"), "status": pstatus_name(v.get("status", 0)),
                "runq": (v.get("runqtail", 0) - v.get("runqhead", 0)) & 0xFFFFFFFF,
                "runnext": self.field("g", runnext, "goid", signed=True) if runnext else None,
                "schedtick": v.get("schedtick"),
                "m": self.field("m", v["m"], "id", signed=True) if v.get("m") else None,
            })
            if detail:
                out[-1]["runq_goids"] = self.local_runq(p)
        return out

    def sched(self, detail: bool = False) -> dict:
        """schedt's counts and "ps" (each P); with detail (goemu debug's `sched`), also "runq"
        (goids on the global run queue), "pidle" (idle P ids), "midle" (idle M ids) and each
        P's local run queue ("runq_goids")."""
        base = self.lay.globals.get("runtime.sched")
        if base is None or "schedt" not in self.lay.offsets:
            return {}
        v = read_struct(self.lay, "schedt", self.read, base,
                        ["runqsize", "npidle", "nmspinning", "nmidle", "nmidlelocked", "nmsys",
                         "mnext", "nmfreed", "gcwaiting", "goidgen", "runq.head", "pidle",
                         "midle", "stopwait", "sysmonwait"])
        out = {k: v[k] for k in ("runqsize", "npidle", "nmspinning", "nmidle", "nmidlelocked",
                                 "nmsys", "gcwaiting", "stopwait", "sysmonwait", "goidgen")
               if k in v}
        if "mnext" in v and "nmfreed" in v:
            out["mcount"] = v["mnext"] - v["nmfreed"]
        if detail:
            out["runq"] = self.glist(v.get("runq.head", 0))
            out["pidle"] = self._chain("p", v.get("pidle", 0), "link")
            out["midle"] = self._chain("m", v.get("midle", 0), "schedlink")
        else:
            out = {k: out[k] for k in ("runqsize", "npidle", "nmspinning", "nmidle", "nmsys",
                                       "gcwaiting", "mcount") if k in out}
        out["ps"] = self.ps(detail)
        return out

    def allgs(self) -> list[int]:
        return [g for g in self._slice("runtime.allgs") if g]

    def g_by_goid(self, goid: int) -> int | None:
        return next((g for g in self.allgs() if self.goid_of(g) == goid), None)

    def _thread_map(self) -> tuple[dict, dict]:
        """({g: thread running on g's own stack}, {g: thread whose M serves g from g0})."""
        on, serving = {}, {}
        if self.k.exit_status is not None:      # the process has ended: no thread runs anything
            return on, serving
        for t in self.k.live_threads():
            g = self.current_g(t)
            if not g:
                continue
            on.setdefault(g, t)
            m = self.field("g", g, "m")
            cg = self.field("m", m, "curg") if m else 0
            if cg and cg != g:
                serving.setdefault(cg, t)
        return on, serving

    def position(self, g: int, maps: tuple[dict, dict] | None = None) -> dict:
        """Where goroutine g is: {"pc", "sp", "from" (thread, g0, syscall or sched), "tid"}.
        A goroutine a thread runs now is where that thread is (its g.sched is from its last
        switch, stale); one whose M is on g0 for it (systemstack, morestack), one in a syscall
        and a parked one are where their g.sched (or syscallpc/sp) says."""
        on, serving = maps or self._thread_map()
        t = on.get(g)
        if t is not None:
            return {"pc": self.k.get_reg(t, RIP), "sp": self.k.get_reg(t, RSP), "from": "thread",
                    "tid": t.tid}
        v = read_struct(self.lay, "g", self.read, g, ["atomicstatus", "sched.pc", "sched.sp",
                                                       "syscallpc", "syscallsp"])
        t = serving.get(g)
        if v.get("atomicstatus", 0) & ~0x1000 == 3 and v.get("syscallsp"):
            return {"pc": v["syscallpc"], "sp": v["syscallsp"], "from": "syscall",
                    "tid": t.tid if t is not None else None}
        return {"pc": v.get("sched.pc", 0), "sp": v.get("sched.sp", 0),
                "from": "g0" if t is not None else "sched", "tid": t.tid if t is not None else None}

    def goroutines(self) -> list[dict]:
        out = []
        maps = self._thread_map()
        for g in self.allgs():
            v = read_struct(self.lay, "g", self.read, g, ["goid", "atomicstatus", "waitreason",
                                                           "startpc", "m", "stack.lo", "stack.hi"])
            status = v.get("atomicstatus", 0)
            if status == 6:     # _Gdead: a free g
                continue
            start = self.syms.lookup(v.get("startpc", 0))
            pos = self.position(g, maps)
            where = self.syms.lookup(pos["pc"]) if pos["pc"] else None
            out.append({
                "g": g, "goid": v.get("goid"), "status": status_name(status),
                "waitreason": self.lay.waitreason_name(v.get("waitreason", 0)) if status == 4 else "",
                "start": start[0] if start else hex(v.get("startpc", 0)),
                "at": where[0] if where else "", "pc": pos["pc"], "sp": pos["sp"],
                "from": pos["from"], "tid": pos["tid"],
                "lo": v.get("stack.lo", 0), "hi": v.get("stack.hi", 0),
                "m": self.field("m", v["m"], "id", signed=True) if v.get("m") else None,
            })
        return out

    def threads(self) -> list[dict]:
        out = []
        for tid, t in sorted(self.k.threads.items()):
            mid, pid, goid = self.gmp(t) if t.state != "dead" else (None, None, None)
            m = None
            g = self.current_g(t) if t.state != "dead" else 0
            curg = None
            if g and self.ok:
                m = self.field("g", g, "m")
                cg = self.field("m", m, "curg") if m else None
                curg = self.field("g", cg, "goid", signed=True) if cg else None
            out.append({"tid": tid, "state": t.state, "wait": t.wait.what if t.wait else "",
                        "m": mid, "p": pid, "g": goid, "curg": curg})
        return out
