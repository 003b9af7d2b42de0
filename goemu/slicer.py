"""How a slice of guest execution ends, so that another guest thread gets the CPU.

Designs measured (bench/probe_stop.py reproduces the key facts):

* ``uc.emu_stop()`` from a watchdog thread, as Unicorn ships: **inexact**. The guest loop
  ``lock inc [rbx]; inc r15; jmp`` ended with memory and r15 apart by ~4,400 after ~4,900
  stops: instructions that had run were run again, which corrupted the Go runtime ("schedule:
  holding locks"). The cause, read in Unicorn 2.1.4's source (tcg/tcg-op.c): after *every*
  guest load and store Unicorn emits a call to ``helper_check_exit_request``, which on a pending
  stop leaves the block with ``cpu_loop_exit_restore`` -- back to the start of the instruction
  whose store has already happened. Those calls also cost 28% of a GC-heavy run (perf).
* ``emu_start(count=N)`` (``CountSlicer``): exact, and reproducible to the instruction, so
  ``--deterministic``, trace and debug use it. Unicorn counts with a per-instruction hook: 13x
  slower on CPU-bound code.
* **The default (``TimeSlicer``)**: Unicorn's own ``uc_struct.no_exit_request`` switch (its
  workaround for ARM IT blocks) set before any code is translated, so no per-load/store check
  is generated; the check at the *start* of every block stays (translator.c, gen_tb_start). A
  watchdog thread then calls ``uc_emu_stop`` directly and the stop lands before the first
  instruction of the next block: exact (0 re-executions in the probe) with no hook at all. The
  field's offset is found by pattern and confirmed by a behaviour test on a scratch engine.
* Fallback where that check fails (another Unicorn build): a native ``UC_HOOK_BLOCK`` callback
  (17 bytes of machine code) that calls ``uc_emu_stop`` when the watchdog has set a flag;
  exact too, at one native call per block (~11% of a GC-heavy run).
"""
from __future__ import annotations

import ctypes
import threading
import time

from unicorn import UC_HOOK_BLOCK
from unicorn.unicorn_py3 import unicorn as _ucmod

from . import native
from .cpu import UNTIL


def _find_counter_offset() -> int | None:
    """Where Unicorn keeps the instruction counter of a count-limited emu_start.

    Unicorn counts `count=N` runs in ``uc_struct.emu_counter`` but has no API to read it. This
    finds its offset by experiment on a scratch engine (the struct layout is fixed per Unicorn
    build): a loop stopped at an `until` address after exactly 3000 instructions under
    count=999999 leaves 3000 in emu_counter and 999999 in emu_count."""
    from unicorn import UC_ARCH_X86, UC_MODE_64, Uc
    try:
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        uc.mem_map(0x1000, 0x1000)
        uc.mem_write(0x1000, bytes.fromhex("48ffc0" "483de8030000" "75f5" "90"))  # 1000 x 3 insns
        uc.emu_start(0x1000, 0x100B, 0, 999_999)
        base = ctypes.cast(uc._uch, ctypes.c_void_p).value
        words = (ctypes.c_uint64 * 2048).from_address(base)
        hits = [i * 8 for i in range(2047) if words[i] == 3000 and words[i + 1] == 999_999]
        return hits[0] if len(hits) == 1 else None
    except Exception:   # an unexpected Unicorn build: exact counts are then unavailable
        return None


def counter_offset() -> int | None:
    return native.uc_struct_offset("emu_counter", _find_counter_offset)


class CountSlicer:
    """Slices of exactly `insns` guest instructions; keeps the exact count of executed
    instructions (``executed``), also readable mid-slice from hooks (``icount()``)."""

    def __init__(self, uc, insns: int):
        self.uc = uc
        self.insns = insns
        self.executed = 0           # instructions in completed emu_start calls
        off = counter_offset()
        self._counter = None
        if off is not None:
            base = ctypes.cast(uc._uch, ctypes.c_void_p).value
            self._counter = ctypes.c_uint64.from_address(base + off)
        self.last = 0
        self.quantum = insns        # a thread's full slice, in this slicer's unit (instructions)

    @property
    def used(self) -> int:
        """What the last run consumed of a slice (instructions)."""
        return self.last

    @property
    def exact(self) -> bool:
        return self._counter is not None

    def run(self, begin: int, budget: int | None = None) -> None:
        n = self.insns if budget is None else max(1, budget)
        try:
            self.uc.emu_start(begin, UNTIL, 0, n)
        finally:
            self.last = self._counter.value if self._counter is not None else n
            self.executed += self.last

    def run_count(self, begin: int, n: int) -> None:
        saved, self.insns = self.insns, n
        try:
            self.run(begin)
        finally:
            self.insns = saved

    def icount(self) -> int:
        """Instructions executed so far, including the running slice (from inside a hook)."""
        return self.executed + (self._counter.value if self._counter is not None else 0)

    def close(self) -> None:
        pass


# void hook(uc_engine *uc, uint64_t addr, uint32_t size, struct ctl *ctl)  (System V ABI)
#   if (ctl->flag) { ctl->flag = 0; return ctl->stop(uc); }
_HOOK_CODE = bytes.fromhex(
    "8b01"          # mov eax, [rcx]        ; ctl->flag
    "85c0"          # test eax, eax
    "7501"          # jnz stop
    "c3"            # ret
    "c70100000000"  # stop: mov dword [rcx], 0
    "488b4108"      # mov rax, [rcx+8]      ; ctl->stop = uc_emu_stop
    "ffe0"          # jmp rax               ; uc_emu_stop(uc): rdi still holds uc
)


class _Ctl(ctypes.Structure):
    _fields_ = [("flag", ctypes.c_int32), ("pad", ctypes.c_int32), ("stop", ctypes.c_void_p)]


def _find_no_exit_request_offset() -> int | None:
    """Offset of ``uc_struct.no_exit_request`` (no API sets it). In Unicorn 2.1's uc_priv.h it
    follows target_page_size (4096), target_page_align (4095), qemu_host_page_size and
    qemu_real_host_page_size by 50 bytes, and init_done (true) follows it. The candidate is then
    tested: with the switch on, a memory hook's emu_stop takes effect at the end of the block
    (3 more instructions run), with it off right after the load."""
    from unicorn import UC_ARCH_X86, UC_HOOK_MEM_READ, UC_MODE_64, Uc
    from unicorn.x86_const import UC_X86_REG_RBX

    def engine():
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        uc.mem_map(0x1000, 0x2000)
        # mov rax, [0x2000]; inc rbx x3; nop; hlt
        uc.mem_write(0x1000, bytes.fromhex("488b042500200000" "48ffc3" "48ffc3" "48ffc3" "90" "f4"))
        uc.hook_add(UC_HOOK_MEM_READ, lambda u, *_a: u.emu_stop())
        return uc, native.uc_address(uc)

    try:
        uc, base = engine()
        raw = bytes((ctypes.c_uint8 * 4096).from_address(base))
        u32 = lambda o: int.from_bytes(raw[o:o + 4], "little")  # noqa: E731
        u64 = lambda o: int.from_bytes(raw[o:o + 8], "little")  # noqa: E731
        hits = [o for o in range(0, 4000, 8) if u32(o) == 4096 and u32(o + 4) == 4095
                and u64(o + 8) == u64(o + 16) and u64(o + 8) in (4096, 16384, 65536)]
        if len(hits) != 1 or raw[hits[0] + 50] != 0 or raw[hits[0] + 51] != 1:
            return None
        off = hits[0] + 50
        uc.emu_start(0x1000, 0x1011)
        if uc.reg_read(UC_X86_REG_RBX) != 0:
            return None
        uc2, base2 = engine()
        ctypes.c_uint8.from_address(base2 + off).value = 1
        uc2.emu_start(0x1000, 0x1011)
        return off if uc2.reg_read(UC_X86_REG_RBX) == 3 else None
    except Exception:
        return None


def no_exit_request_offset() -> int | None:
    return native.uc_struct_offset("no_exit_request", _find_no_exit_request_offset)


class TimeSlicer:
    """Time slices of `seconds` of host time, ended exactly at a block boundary."""

    def __init__(self, uc, seconds: float, mode: str | None = None):
        self.uc = uc
        self.seconds = seconds
        off = no_exit_request_offset() if mode != "block-hook" else None
        self.mode = "exit-check" if off is not None else "block-hook"
        self._ctl = _Ctl(0, 0, ctypes.cast(_ucmod.uclib.uc_emu_stop, ctypes.c_void_p).value)
        if off is not None:
            # must precede the first translation: blocks translated before keep their checks
            ctypes.c_uint8.from_address(native.uc_address(uc) + off).value = 1
        else:
            native.hook_add_native(uc, UC_HOOK_BLOCK, native.code_page(_HOOK_CODE),
                                   ctypes.addressof(self._ctl))
        self._uch = uc._uch
        self.used = 0.0             # seconds the last run took
        self.cond = threading.Condition()
        self.deadline: float | None = None
        self.closed = False
        self.thread = threading.Thread(target=self._watch, name="goemu-slicer", daemon=True)
        self.thread.start()

    @property
    def quantum(self) -> float:
        return self.seconds

    def run(self, begin: int, budget: float | None = None) -> None:
        """Run until a stop, or until `budget` seconds (default: a whole slice) have passed."""
        self._ctl.flag = 0
        t0 = time.monotonic()
        with self.cond:
            self.deadline = t0 + (self.seconds if budget is None else max(budget, 0.0001))
            self.cond.notify()
        try:
            self.uc.emu_start(begin, UNTIL, 0, 0)
        finally:
            with self.cond:
                self.deadline = None
            self.used = time.monotonic() - t0

    def run_count(self, begin: int, n: int) -> None:
        t0 = time.monotonic()
        try:
            self.uc.emu_start(begin, UNTIL, 0, n)
        finally:
            self.used = time.monotonic() - t0

    def _watch(self) -> None:
        with self.cond:
            while not self.closed:
                if self.deadline is None:
                    self.cond.wait()
                    continue
                delay = self.deadline - time.monotonic()
                if delay > 0:
                    self.cond.wait(delay)
                    continue
                if self.mode == "block-hook":
                    self._ctl.flag = 1      # the next block start stops emulation
                    self.deadline = None
                else:
                    # Stop now. The lock keeps the stop inside this slice (run() clears the
                    # deadline under it); a stop that lands before emu_start has begun is lost,
                    # so ask again every slice length until the slice is over.
                    _ucmod.uclib.uc_emu_stop(self._uch)
                    self.deadline += self.seconds

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()
