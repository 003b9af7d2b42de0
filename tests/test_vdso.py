"""goemu's vDSO: its code is what its source says, and its clocks never go back in time.

The vvar page changes between slices, and a slice can end anywhere, inside ``now`` too: a read
that mixed the old page's TSC base with the new page's clock was a slice ahead, and the next read
went back (``time.Since`` gave negative durations, "--- PASS: X (-0.00s)"). The fix is Linux's:
a seqcount. Tested here by stopping the vDSO after every one of its instructions, and on a
whole program against native.
"""
from __future__ import annotations

import struct
import subprocess

import pytest
from unicorn import UC_ARCH_X86, UC_MODE_64, Uc
from unicorn.x86_const import UC_X86_REG_RDI, UC_X86_REG_RIP, UC_X86_REG_RSI, UC_X86_REG_RSP

from conftest import go119, run_goemu, run_native
from goemu import vdso


def test_code_is_its_source(tmp_path):
    """_TEXT is _ASM assembled (binutils comes with `make deps`)."""
    (tmp_path / "v.s").write_text(vdso._ASM)
    subprocess.run(["as", "-o", tmp_path / "v.o", tmp_path / "v.s"], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", tmp_path / "v.o", tmp_path / "v.bin"],
                   check=True)
    assert (tmp_path / "v.bin").read_bytes() == vdso._TEXT
    syms = subprocess.run(["nm", tmp_path / "v.o"], capture_output=True, check=True).stdout.decode()
    offsets = {name: int(addr, 16) for addr, _t, name in (ln.split() for ln in syms.splitlines())}
    assert {b"__vdso_" + n.encode(): offsets[n] for n in ("clock_gettime", "gettimeofday", "time")} \
        == vdso._ENTRY


STACK, RET = 0x10000, 0x20000          # a stack page, and a return address that ends the run
TS = STACK + 0x800


def _cpu():
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(vdso.VDSO_ADDR, vdso.VDSO_SIZE)      # the image, then the vvar page
    uc.mem_write(vdso.VDSO_ADDR, vdso.build_vdso())
    uc.mem_map(STACK, 0x1000)
    uc.mem_map(RET, 0x1000)
    return uc


def _clock_gettime(uc, clock_id: int, split: int | None, page2: bytes) -> int:
    """Call __vdso_clock_gettime; after `split` instructions (None: never) a new page replaces
    the vvar page, as between two slices. Returns the nanoseconds read."""
    entry = vdso.VDSO_ADDR + 0x400 + vdso._ENTRY[b"__vdso_clock_gettime"]
    uc.mem_write(STACK + 0x700, struct.pack("<Q", RET))
    uc.reg_write(UC_X86_REG_RSP, STACK + 0x700)
    uc.reg_write(UC_X86_REG_RDI, clock_id)
    uc.reg_write(UC_X86_REG_RSI, TS)
    if split is not None:
        uc.emu_start(entry, RET, count=split)
        uc.mem_write(vdso.VVAR_ADDR, page2)
        pc = uc.reg_read(UC_X86_REG_RIP)
        if pc != RET:
            uc.emu_start(pc, RET)
    else:
        uc.emu_start(entry, RET)
    sec, nsec = struct.unpack("<QQ", bytes(uc.mem_read(TS, 16)))
    return sec * 10**9 + nsec


@pytest.mark.parametrize("clock_id", [0, 1])
def test_a_read_split_by_a_new_page_is_consistent(clock_id):
    """Whatever instruction the slice ends after, the result comes whole from one page: never
    the new page's clock plus the old page's TSC delta (a slice in the future)."""
    from goemu.native import rdtsc
    base = rdtsc()
    mult = 1 << 32                        # 1 ns per tick: easy arithmetic
    old = vdso.vvar_bytes(10**15, 5 * 10**12, base - 2_000_000, mult, seq=1)   # 2 ms into its slice
    new = vdso.vvar_bytes(10**15 + 10**9, 5 * 10**12 + 10**9, rdtsc() + 10**12, mult, seq=2)
    steps = 1                              # (count=0 would mean "no limit")
    while True:
        uc = _cpu()        # a fresh CPU each time: with translated blocks cached, Unicorn's
        uc.mem_write(vdso.VVAR_ADDR, old)          # `count` stops late (at a block's end)
        got = _clock_gettime(uc, clock_id, steps, new)
        start = struct.unpack_from("<Q", new, 8 if clock_id == 1 else 0)[0]
        old_start = struct.unpack_from("<Q", old, 8 if clock_id == 1 else 0)[0]
        # From the new page: its clock exactly (its TSC base lies in the future: delta 0).
        # From the old page (the read finished before the split): old clock + elapsed ticks.
        assert got == start or old_start + 2_000_000 <= got < old_start + 2_000_000 + 10**9, \
            (steps, got - start)
        if got != start:                   # finished on the old page: no later split point
            break
        steps += 1
    assert steps > 10                      # the split fell inside `now` many times


def test_monotonic_never_goes_back():
    """monoclock reads time.Now from 4 goroutines for 2 s; any read earlier than the one before
    it is counted. Before the seqcount goemu gave ~50 of them, up to 4 ms back."""
    native = run_native(go119("monoclock"), 4, "2s")
    emu = run_goemu(go119("monoclock"), 4, "2s")
    assert native.stdout == b"backwards: 0 worst: 0s\n"
    assert emu.returncode == 0, emu.stderr[-2000:]
    assert emu.stdout == native.stdout
