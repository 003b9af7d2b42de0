"""How a slice of guest execution ends, so that another guest thread gets the CPU.

Three designs were measured (bench/probe_stop.py reproduces the key fact):

* ``uc.emu_stop()`` from a watchdog thread (or ``emu_start(timeout=)``, which does the same):
  **inexact** in Unicorn 2.1.4. The guest loop ``lock inc [rbx]; inc r15; jmp`` ended with
  memory and r15 apart by ~4,400 after ~4,900 stops: instructions that had run were run again
  after the stop, which is what corrupted the Go runtime ("schedule: holding locks", "unlock of
  unlocked mutex") in every design that used it.
* ``emu_start(count=N)`` (``CountSlicer``): exact, and reproducible to the instruction, so
  ``--deterministic`` uses it. Unicorn counts with a per-instruction hook and syncs the PC on
  every instruction: 13x slower on the CPU-bound cpuhash fixture (8 MiB: 8.4 s vs 0.65 s).
* A *native* block hook (``BlockStopSlicer``, the default): 17 bytes of x86-64 machine code
  registered as a UC_HOOK_BLOCK callback. It runs at the start of each translation block,
  reads a flag, and only when the flag is set tail-calls ``uc_emu_stop``. A stop requested from
  inside a block hook takes effect before the block's first instruction, so it is exact (the
  same loop: 0 difference after ~4,900 stops). The watchdog thread only sets the flag. No
  Python runs per block; the cost is one native call per executed block.
"""
from __future__ import annotations

import ctypes
import mmap
import threading
import time

from unicorn import UC_HOOK_BLOCK
from unicorn.unicorn_py3 import unicorn as _ucmod

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


_COUNTER_OFFSET: int | None | bool = False


def counter_offset() -> int | None:
    global _COUNTER_OFFSET
    if _COUNTER_OFFSET is False:
        _COUNTER_OFFSET = _find_counter_offset()
    return _COUNTER_OFFSET


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

    @property
    def exact(self) -> bool:
        return self._counter is not None

    def run(self, begin: int) -> None:
        try:
            self.uc.emu_start(begin, UNTIL, 0, self.insns)
        finally:
            self.last = self._counter.value if self._counter is not None else self.insns
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


class BlockStopSlicer:
    """Time slices of `seconds` of host time, ended exactly at a block boundary."""

    def __init__(self, uc, seconds: float):
        self.uc = uc
        self.seconds = seconds
        self._code = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self._code.write(_HOOK_CODE)
        code_addr = ctypes.addressof(ctypes.c_char.from_buffer(self._code))
        # written, then made read+execute (never writable and executable at once)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mprotect(ctypes.c_void_p(code_addr), mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
            raise OSError(ctypes.get_errno(), "mprotect of the block-hook page failed")
        self._ctl = _Ctl(0, 0, ctypes.cast(_ucmod.uclib.uc_emu_stop, ctypes.c_void_p).value)
        handle = _ucmod.uc_hook_h()
        status = _ucmod.uclib.uc_hook_add(
            uc._uch, ctypes.byref(handle), UC_HOOK_BLOCK, ctypes.c_void_p(code_addr),
            ctypes.cast(ctypes.pointer(self._ctl), ctypes.c_void_p), ctypes.c_uint64(1), ctypes.c_uint64(0))
        if status != 0:
            raise RuntimeError(f"uc_hook_add(UC_HOOK_BLOCK) failed: {status}")
        self.cond = threading.Condition()
        self.deadline: float | None = None
        self.closed = False
        self.thread = threading.Thread(target=self._watch, name="goemu-slicer", daemon=True)
        self.thread.start()

    def run(self, begin: int) -> None:
        self._ctl.flag = 0
        with self.cond:
            self.deadline = time.monotonic() + self.seconds
            self.cond.notify()
        try:
            self.uc.emu_start(begin, UNTIL, 0, 0)
        finally:
            with self.cond:
                self.deadline = None

    def run_count(self, begin: int, n: int) -> None:
        self.uc.emu_start(begin, UNTIL, 0, n)

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
                self._ctl.flag = 1      # the next block start stops emulation
                self.deadline = None

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()
