"""The PC of an instruction-fetch fault on an instruction that straddles into a page the guest
may not execute.

Unicorn translates a block before running any of it; when the fetch of a later instruction of
the block fails, the CPU is still at the block's first instruction (RIP = block start), while
Linux reports the faulting instruction itself, with the instructions before it executed. Such a
block has no jump, syscall or trap before the straddling instruction (each would have ended
it), so goemu decodes the block up to the page end, runs it with an exit at the straddling
instruction (the plain instructions before it execute), and reports the fault there.
"""
from __future__ import annotations

from unicorn import UcError

from .cpu import RIP
from .memory import PAGE, UC_MEM_FETCH


def _straddler(k, rip: int, addr: int) -> int:
    """Where the first instruction from rip that does not end by `addr` starts."""
    from capstone import CS_ARCH_X86, CS_MODE_64, Cs
    try:
        code = k.mem.read(rip, addr - rip)
    except Exception:
        return rip
    pc = rip
    for insn in Cs(CS_ARCH_X86, CS_MODE_64).disasm(code, rip):
        if insn.address != pc:
            break
        pc = insn.address + insn.size
    return pc


def step_to_fetch_fault(k, addr: int, access: int) -> bool:
    """If the refused fetch of `addr` lies past RIP in the same block, execute up to the
    straddling instruction (RIP is then on it). True if RIP moved."""
    uc = k.uc
    rip = uc.reg_read(RIP)
    if access != UC_MEM_FETCH or not rip < addr <= rip + PAGE or addr & (PAGE - 1):
        return False
    target = _straddler(k, rip, addr)
    if target == rip or target > addr:
        return False
    k.mem.clear_fault()
    uc.ctl_set_exits([target])
    try:
        uc.emu_start(rip, 0, 0, 0)
    except UcError:
        return False
    finally:
        uc.ctl_set_exits([])
    return uc.reg_read(RIP) == target
