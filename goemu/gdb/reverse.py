"""Reverse execution for the gdb stub under --deterministic: gdb's ``bs`` (reverse-stepi) and
``bc`` (reverse-continue; reverse-finish is gdb's own combination of the two).

How: re-execution, not snapshots. A --deterministic run is a function of its input, so the
session is kept as a log of what gdb did that can change the guest (resumes and steps with
their signal choices, breakpoint and watchpoint changes, register and memory writes, and for a
Ctrl-C the number of between-slice checks before it came). Going back means: a fresh process,
the log replayed up to the operation that contains the target, and that operation replayed
with extra hooks that stop at a counted event in it:

* ``bs``: a hook on every instruction, during the last operation only, counts the
  instructions it ran; the replay stops before the last one that ran.
* ``bc``: hooks on the current breakpoints and watchpoints record every hit in the whole log
  (without stopping); the replay stops at the last hit before the present.

Each hook is counted by firing, never by Unicorn's instruction counter: a stop inside a slice
is accounted differently from a slice that ran through, so counts in instructions would not
match between the original run and a replay that stops elsewhere. The replayed log then
describes the new present (the last operation becomes "that operation, up to that event"), so
going forward, and back again, replays the same way.

Cost: every reverse step replays the whole history from the start (docs/gdb.md has numbers);
the guest's stdout/stderr are sent to /dev/null while replaying (they were written the first
time), other side effects outside the process (files, sockets) happen again.
"""
from __future__ import annotations

import os
import sys

from unicorn import UC_HOOK_CODE, UC_MEM_WRITE

from ..cpu import RIP
from ..engine import WATCH_HOOKS, Stop
from . import target


class ReplayError(Exception):
    pass


class Reverse:
    def __init__(self, make_kernel):
        self.make_kernel = make_kernel
        self.ops: list[list] = []        # [op tuple, outcome]
        self.stub = None
        self.polls = 0
        self.poll_limit: int | None = None
        self.replaying = False

    def bind(self, stub) -> None:
        self.stub = stub
        self.live_check = stub.engine.interrupt_check
        stub.engine.interrupt_check = self._interrupt_check
        self._count_runs(stub.k)

    # ---- runs: each emu_start of an operation, numbered from 1 -----------------------------------
    def _count_runs(self, k) -> None:
        """Number the slicer's runs within an operation; during the runs named by `window`, a
        hook on every instruction counts (or stops at) its firings. A replay is the same
        sequence of runs, so (run, firing) names the same instruction every time, and the hook
        costs only the few runs it covers."""
        self.run_index = 0
        self.window = None
        orig = k.slicer.run

        def run(begin, budget=None):
            self.run_index += 1
            w = self.window
            h = None
            if w is not None and self.run_index in w["runs"]:
                w["n"] = 0
                h = k.uc.hook_add(UC_HOOK_CODE, self._fire, w, 1, 0)
                k.uc.ctl_flush_tb()
            try:
                orig(begin, budget)
            finally:
                if h is not None:
                    k.uc.hook_del(h)
                    k.uc.ctl_flush_tb()

        k.slicer.run = run

    def _fire(self, uc, address, size, w) -> None:
        k = self.stub.k
        w["n"] += 1
        if w.get("out") is not None:
            w["out"].append((self.run_index, w["n"], k.current.tid, address))
        stop = w.get("stop")
        if stop is not None and stop == (self.run_index, w["n"]):
            self.stub.engine.stop = Stop("step", k.current.tid)
            k.stop("break")

    # ---- the log ---------------------------------------------------------------------------
    def _interrupt_check(self) -> bool:
        self.polls += 1
        if self.replaying:
            if self.live_check():      # Ctrl-C (or gdb gone) during a long replay: give up
                raise ReplayError("replay interrupted")
            return self.poll_limit is not None and self.polls >= self.poll_limit
        return self.live_check()

    def log(self, op: tuple) -> None:
        if self.replaying:
            return
        if op[0] in ("step", "cont"):
            return          # recorded as the whole run by run_op
        self.ops.append([op, None])

    def run_op(self, acts) -> None:
        """Called by the stub before it runs the guest: the resume is logged with its plan."""
        if not self.replaying:
            self.ops.append([("run", tuple(acts)), None])
        self.polls = 0
        self.run_index = 0

    def after_run(self, stop: Stop) -> None:
        if self.replaying:
            return
        k = self.stub.k
        pc = k.get_reg(k.threads[stop.tid], RIP) if stop.tid in k.threads and stop.kind != "exited" else 0
        if stop.kind == "none":
            self.ops.pop()          # nothing ran
            return
        interrupted = stop.kind == "interrupt"
        self.ops[-1][1] = (stop.kind, stop.tid, pc, self.polls if interrupted else None, self.run_index)

    # ---- going back --------------------------------------------------------------------------
    def step_back(self, tid: int) -> Stop:
        runs = [i for i, (op, _) in enumerate(self.ops) if op[0] in ("run", "partial")]
        if not runs:
            return self._restart_at_beginning()
        j = runs[-1]
        k = self.stub.k
        cur = self.stub.last
        cur_tid = cur.tid if cur.tid in k.threads else None
        cur_pc = k.get_reg(k.threads[cur_tid], RIP) if cur_tid is not None and cur.kind != "exited" else None
        outcome = self.ops[j][1]
        nruns = outcome[4] if outcome is not None and len(outcome) > 4 else None
        firings: list[tuple[int, int, int, int]] = []
        if nruns:
            # the instructions of the last few runs of the last operation
            self._replay(j, record=("window", range(max(1, nruns - 3), nruns + 1), firings))
        if firings and firings[-1][2:] == (cur_tid, cur_pc):
            firings.pop()    # the run stopped before that instruction (breakpoint, fault)
        if firings:
            r, m, _, _ = firings[-1]
            stop = self._replay(j, stop_at=("window", r, m))
            return Stop("step", stop.tid if stop else None)
        # not in those runs: count every instruction of the operation (slow, rare)
        every: list[tuple[int, int]] = []
        self._replay(j, record=("all", every))
        n = len(every)
        if n and every[-1] == (cur_tid, cur_pc):
            n -= 1
        if n <= 0:         # nothing ran: step back into the operation before
            self.ops = self.ops[:j]
            self._replay(len(self.ops))
            return self.step_back(tid) if any(op[0] in ("run", "partial") for op, _ in self.ops) \
                else self._restart_at_beginning()
        stop = self._replay(j, stop_at=("all", n))
        return Stop("step", stop.tid if stop else None)

    def continue_back(self) -> Stop:
        e = self.stub.engine
        bps, watches = sorted(e.bps), sorted(e.watches)
        if not bps and not watches:
            return self._restart_at_beginning()
        hits: list[tuple] = []   # (op index, firing number, tid, address, kind)
        k = self.stub.k
        cur = self.stub.last
        cur_pc = k.get_reg(k.threads[cur.tid], RIP) if cur.tid in k.threads and cur.kind != "exited" else None
        self._replay(len(self.ops) - 1, record=("points", hits, bps, watches))
        runs = [i for i, (op, _) in enumerate(self.ops) if op[0] in ("run", "partial")]
        if hits and runs and hits[-1][0] == runs[-1] and hits[-1][2] == cur.tid and (
                (hits[-1][4] == "breakpoint" and cur.kind == "breakpoint" and hits[-1][3] == cur_pc)
                or (hits[-1][4] == "watch" and cur.kind == "watch")):
            hits.pop()     # the hit we are stopped at is the present, not the past
        if os.environ.get("GOEMU_GDB_LOG"):
            print(f"goemu: reverse-continue: hits {hits[-4:]} ops {len(self.ops)} present "
                  f"{cur} pc={cur_pc}", file=sys.stderr)
        if not hits:
            return self._restart_at_beginning()
        j, n, tid, addr, _ = hits[-1]
        stop = self._replay(j, stop_at=("points", n, bps, watches))
        return stop or Stop("step", tid)

    def _restart_at_beginning(self) -> Stop:
        self.ops = [[op, out] for op, out in self.ops if op[0] not in ("run", "partial")
                    and op[0] in ("points",)]
        self._replay(len(self.ops))
        t = self.stub.k.current
        return Stop("replaylog", t.tid if t else None)

    # ---- replay ------------------------------------------------------------------------------
    def _replay(self, upto: int, record=None, stop_at=None) -> Stop | None:
        """A fresh process with ops[:upto] replayed; with `record`, op `upto` (or every op for
        "points") also runs with counting hooks; with `stop_at`, op `upto` runs until the
        counted event and becomes the log's last operation."""
        stub, e = self.stub, self.stub.engine
        old_k = stub.k
        keep_bps, keep_watches = list(e.bps), list(e.watches)
        old_hooks = (dict(e.bps), dict(e.watches), e.temp, e.stop, stub.last, stub.exited)
        new_k = self.make_kernel()
        muted = self._mute_stdio(new_k)
        for addr in list(e.bps):
            e.bps.pop(addr)
        e.watches.clear()
        e.temp = None
        e._passing.clear()
        e.stop = None
        self.replaying = True
        stub.k = new_k
        if stub.view is not None:
            stub.view.k = new_k
        e.attach(new_k)
        stub.exited = False
        stub.last = Stop("start", new_k.current.tid)
        result = None
        hooks = []
        try:
            count = {"n": 0, "op": -1, "target": upto}
            if record is not None and record[0] == "points":
                hooks = self._point_hooks(new_k, record[2], record[3], count, record[1], None)
            if stop_at is not None and stop_at[0] == "points":
                hooks = self._point_hooks(new_k, stop_at[2], stop_at[3], count, None, stop_at[1])
            last = upto + (1 if record is not None or stop_at else 0)
            self._count_runs(new_k)
            for i, (op, outcome) in enumerate(self.ops[:last]):
                count["op"], count["n"] = i, 0
                self.run_index = 0
                self.window = None
                if i == upto and record is not None and record[0] == "window":
                    self.window = {"runs": set(record[1]), "out": record[2], "stop": None, "n": 0}
                if i == upto and stop_at is not None and stop_at[0] == "window":
                    self.window = {"runs": {stop_at[1]}, "out": None, "stop": stop_at[1:], "n": 0}
                if i == upto and record is not None and record[0] == "all":
                    hooks = [new_k.uc.hook_add(UC_HOOK_CODE, self._count_all, (count, record[1], None),
                                               1, 0)]
                    new_k.uc.ctl_flush_tb()
                if i == upto and stop_at is not None and stop_at[0] == "all":
                    hooks = [new_k.uc.hook_add(UC_HOOK_CODE, self._count_all,
                                               (count, None, stop_at[1]), 1, 0)]
                    new_k.uc.ctl_flush_tb()
                result = self._apply(op, outcome, check=not (i == upto and stop_at is not None))
                self.window = None
                if i == upto and stop_at is not None:
                    stop = e.stop
                    got = stub.last
                    pc = new_k.get_reg(new_k.threads[got.tid], RIP) \
                        if got.tid in new_k.threads and got.kind != "exited" else 0
                    self.ops = self.ops[:upto] + [[("partial", op, stop_at),
                                                   (got.kind, got.tid, pc, None, self.run_index)]]
                    result = stop
        except Exception:
            for h in hooks:
                try:
                    new_k.uc.hook_del(h)
                except Exception:
                    pass
            self.replaying = False
            stub.k = old_k
            if stub.view is not None:
                stub.view.k = old_k
            # the present stays: the old process, with its hooks still on its CPU
            e.bps, e.watches, e.temp = {}, {}, None
            e.attach(old_k)
            e.bps, e.watches, e.temp, e.stop, stub.last, stub.exited = old_hooks
            self.window = None
            self._unmute_stdio(new_k, muted)
            new_k.finish()
            new_k.mem.close()
            raise
        for h in hooks:
            new_k.uc.hook_del(h)
        new_k.uc.ctl_flush_tb()
        self.replaying = False
        self._unmute_stdio(new_k, muted)
        # the present's breakpoints and watchpoints (gdb's view), on the new process
        for addr in list(e.bps):
            e.remove_breakpoint(addr)
        for w in list(e.watches):
            e.remove_watch(*w)
        for addr in keep_bps:
            e.add_breakpoint(addr)
        for w in keep_watches:
            e.add_watch(*w)
        e.stop = None
        old_k.finish()
        old_k.mem.close()
        new_k.start()
        if result is not None and result.tid is not None and result.tid in new_k.threads:
            stub.g_thread = result.tid
        return result

    def _apply(self, op: tuple, outcome, check: bool):
        stub, e = self.stub, self.stub.engine
        k = stub.k
        kind = op[0]
        if kind == "partial":
            inner, spec = op[1], op[2]
            if spec[0] == "window":
                outer = self.window       # a record window of this same operation, if any
                self.window = {"runs": {spec[1]} | (outer["runs"] if outer else set()),
                               "out": outer["out"] if outer else None, "stop": spec[1:], "n": 0}
                try:
                    self._apply(inner, None, check=False)
                finally:
                    self.window = None
                return None
            count = {"n": 0, "op": 0, "target": 0}
            hooks = (self._point_hooks(k, spec[2], spec[3], count, None, spec[1])
                     if spec[0] == "points" else
                     [k.uc.hook_add(UC_HOOK_CODE, self._count_all, (count, None, spec[1]), 1, 0)])
            k.uc.ctl_flush_tb()
            try:
                self._apply(inner, None, check=False)
            finally:
                for h in hooks:
                    k.uc.hook_del(h)
                k.uc.ctl_flush_tb()
            return None
        if kind == "run":
            self.poll_limit = outcome[3] if outcome is not None else None
            stub.g_thread = stub.g_thread if stub.g_thread in k.threads else k.current.tid
            stub._run(list(op[1]))
            self.poll_limit = None
            if check and outcome is not None:
                got = stub.last
                pc = k.get_reg(k.threads[got.tid], RIP) if got.tid in k.threads and got.kind != "exited" else 0
                if (got.kind, got.tid, pc) != outcome[:3]:
                    raise ReplayError(f"replay diverged: {(got.kind, got.tid, pc)} != {outcome[:3]}")
            return None
        if kind == "points":
            _, insert, what, addr, length = op
            if what in (0, 1):
                (e.add_breakpoint if insert else e.remove_breakpoint)(addr)
            else:
                name = {2: "watch", 3: "rwatch", 4: "awatch"}[what]
                if insert:
                    e.add_watch(name, addr, length)
                else:
                    e.remove_watch(name, addr, length)
        elif kind == "reg":
            _, tid, n, data = op
            k.load(k.threads[tid])
            target.write_reg(k.uc, n, data)
        elif kind == "G":
            _, tid, data = op
            k.load(k.threads[tid])
            off = 0
            for n, (_, size, _) in enumerate(target.REGS):
                if off + size > len(data):
                    break
                target.write_reg(k.uc, n, data[off:off + size])
                off += size
        elif kind == "mem":
            k.mem.poke(op[1], op[2])
        return None

    # ---- counting hooks ------------------------------------------------------------------------
    def _count_all(self, uc, address, size, data) -> None:
        count, out, stop_at = data
        k = self.stub.k
        count["n"] += 1
        if out is not None:
            out.append((k.current.tid, address))
        if stop_at is not None and count["n"] == stop_at:
            e = self.stub.engine
            e.stop = Stop("step", k.current.tid)
            k.stop("break")

    def _point_hooks(self, k, bps, watches, count, out, stop_at) -> list[int]:
        hooks = []

        def on_code(uc, address, size, _):
            self._hit(count, out, stop_at, "breakpoint", address, None)

        def on_mem(uc, access, address, size, value, key):
            kind, waddr, wlen = key
            if address + size <= waddr or address >= waddr + wlen:
                return
            self._hit(count, out, stop_at, "watch", waddr, (kind, uc, access, address, size))

        self._keep = (on_code, on_mem)
        for addr in bps:
            hooks.append(k.uc.hook_add(UC_HOOK_CODE, on_code, None, addr, addr))
        for kind, addr, length in watches:
            hooks.append(k.uc.hook_add(WATCH_HOOKS[kind], on_mem, (kind, addr, length),
                                       max(addr - 7, 0), addr + length - 1))
        k.uc.ctl_flush_tb()
        return hooks

    def _hit(self, count, out, stop_at, kind, addr, mem) -> None:
        e = self.stub.engine
        if e.watch_muted and kind == "watch":
            return
        k = self.stub.k
        count["n"] += 1
        if out is not None:
            out.append((count["op"], count["n"], k.current.tid, addr, kind))
        if stop_at is not None and count["n"] == stop_at and count["op"] == count["target"]:
            if mem is not None:
                wkind, uc, access, maddr, size = mem
                if access == UC_MEM_WRITE and e._restore is None:
                    e._restore = (maddr, bytes(uc.mem_read(maddr, size)))
                e.stop = Stop("watch", k.current.tid, addr, watch=wkind)
            else:
                e.stop = Stop("breakpoint", k.current.tid, addr)
            k.stop("break")

    # ---- the guest's stdio while replaying -------------------------------------------------------
    def _mute_stdio(self, k) -> list[tuple[int, int]]:
        saved = []
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            for n in (1, 2):
                fd = k.main_proc.fds.fds.get(n)
                if fd is not None:
                    saved.append((fd.host, os.dup(fd.host)))
                    os.dup2(null, fd.host, inheritable=False)
        finally:
            os.close(null)
        return saved

    def _unmute_stdio(self, k, saved) -> None:
        for host, copy in saved:
            os.dup2(copy, host, inheritable=False)
            os.close(copy)

