#!/usr/bin/env python3
"""Is a time-slice stop exact? Runs the guest loop `lock inc qword [rbx]; inc r15; jmp` and
stops it every 0.5 ms from a watchdog thread, for 3 s per method, then compares the memory
counter with r15: any difference means instructions ran twice across a stop.

    python3 bench/probe_stop.py

Methods: plain emu_stop from a watchdog (Unicorn as shipped), goemu's default (watchdog
emu_stop with Unicorn's per-load/store exit checks switched off) and its fallback (a native
block hook).
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from unicorn import UC_ARCH_X86, UC_MODE_64, Uc
from unicorn.x86_const import UC_X86_REG_R15, UC_X86_REG_RBX, UC_X86_REG_RIP

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from goemu.cpu import UNTIL  # noqa: E402
from goemu.slicer import TimeSlicer  # noqa: E402

LOOP = bytes.fromhex("f048ff03" "49ffc7" "ebf7")   # lock inc qword [rbx]; inc r15; jmp loop


def probe(method: str, seconds: float = 3.0) -> tuple[int, int, int]:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(0x1000, 0x1000)
    uc.mem_map(0x10000, 0x1000)
    uc.mem_write(0x1000, LOOP)
    uc.reg_write(UC_X86_REG_RBX, 0x10000)
    done = False
    if method in ("exit-check", "block-hook"):
        slicer = TimeSlicer(uc, 0.0005, mode=method)
        assert slicer.mode == method, slicer.mode
        run = slicer.run
    else:
        def watchdog():
            while not done:
                time.sleep(0.0005)
                uc.emu_stop()
        threading.Thread(target=watchdog, daemon=True).start()

        def run(begin):
            uc.emu_start(begin, UNTIL, 0, 0)
    rip, stops, t0 = 0x1000, 0, time.time()
    while time.time() - t0 < seconds:
        run(rip)
        rip = uc.reg_read(UC_X86_REG_RIP)
        stops += 1
    done = True
    mem = int.from_bytes(uc.mem_read(0x10000, 8), "little")
    return stops, mem, uc.reg_read(UC_X86_REG_R15)


def main() -> int:
    for method in ("emu_stop", "exit-check", "block-hook"):
        stops, mem, r15 = probe(method)
        print(f"{method:<11} stops={stops:6d} memory={mem} r15={r15} re-executed={mem - r15}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
