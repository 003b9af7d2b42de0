"""``int 0x80`` from 64-bit code: Linux runs its 32-bit (ia32) syscall table, with the number in
EAX, arguments in EBX, ECX, EDX, ESI, EDI, EBP (each truncated to 32 bits) and the result in RAX.

Only calls whose arguments mean the same in both ABIs (integers, 32-bit pointers to bytes or C
strings) are routed to the 64-bit handlers; a 32-bit number not listed here returns ENOSYS with
a note under -v (natively it would run: 32-bit struct layouts are not emulated).
"""
from __future__ import annotations

from ..cpu import RAX
from ..errno import ENOSYS
from . import HANDLERS, call
from .table import BY_NAME

# ia32 number -> x86-64 name (arch/x86/entry/syscalls/syscall_32.tbl)
IA32 = {
    1: "exit", 3: "read", 4: "write", 5: "open", 6: "close", 9: "link", 10: "unlink", 12: "chdir",
    15: "chmod", 20: "getpid", 29: "pause", 33: "access", 36: "sync", 37: "kill", 38: "rename",
    39: "mkdir", 40: "rmdir", 41: "dup", 42: "pipe", 45: "brk", 60: "umask", 63: "dup2",
    64: "getppid", 83: "symlink", 85: "readlink", 158: "sched_yield", 199: "getuid", 200: "getgid",
    201: "geteuid", 202: "getegid", 224: "gettid", 238: "tkill", 252: "exit_group", 270: "tgkill",
}

_ARG_REGS = ("rbx", "rcx", "rdx", "rsi", "rdi", "rbp")


def dispatch_int80(k, t) -> None:
    """Run the 32-bit syscall in EAX for thread t (its registers live in the CPU)."""
    from unicorn import x86_const as X
    uc = k.uc
    nr = uc.reg_read(X.UC_X86_REG_EAX)
    args = [uc.reg_read(getattr(X, f"UC_X86_REG_{r.upper()}")) & 0xFFFFFFFF for r in _ARG_REGS]
    t.syscalls += 1
    name = IA32.get(nr)
    h = HANDLERS.get(BY_NAME[name]) if name else None
    if h is None:
        k.note(f"32-bit syscall {nr} (int 0x80) is not emulated; the guest got ENOSYS")
        k.regs.write(RAX, -ENOSYS)
        return
    call(k, t, h, args[:len(h.args)])
