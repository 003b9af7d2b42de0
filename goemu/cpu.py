"""The emulated CPU: one Unicorn instance with a Linux-like x86-64 initial state.

CPU model: HASWELL, which Unicorn's TCG can actually execute: it advertises SSE2..SSE4.2,
POPCNT, AES, PCLMULQDQ, BMI1/2 and ERMS, and no AVX/AVX2/FMA (TCG cannot run those), and
XGETBV reports no YMM state, so Go never picks an AVX code path (go114-abi.md §5.3).
"""
from __future__ import annotations

import ctypes
import struct

from unicorn import UC_ARCH_X86, UC_MODE_64, Uc
from unicorn import x86_const as X

UNTIL = 0xFFFF_FFFF_FFFF_F000   # emu_start's `until`; ignored, since goemu enables Unicorn's
                                # exits list and leaves it empty (goemu/memory.py says why)

# General-purpose registers in sigcontext order (r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip)
SIGCONTEXT_REGS = [
    X.UC_X86_REG_R8, X.UC_X86_REG_R9, X.UC_X86_REG_R10, X.UC_X86_REG_R11,
    X.UC_X86_REG_R12, X.UC_X86_REG_R13, X.UC_X86_REG_R14, X.UC_X86_REG_R15,
    X.UC_X86_REG_RDI, X.UC_X86_REG_RSI, X.UC_X86_REG_RBP, X.UC_X86_REG_RBX,
    X.UC_X86_REG_RDX, X.UC_X86_REG_RAX, X.UC_X86_REG_RCX, X.UC_X86_REG_RSP,
    X.UC_X86_REG_RIP,
]
# syscall argument registers
ARG_REGS = [X.UC_X86_REG_RDI, X.UC_X86_REG_RSI, X.UC_X86_REG_RDX,
            X.UC_X86_REG_R10, X.UC_X86_REG_R8, X.UC_X86_REG_R9]
RAX, RIP, RSP, EFLAGS, FS_BASE = (X.UC_X86_REG_RAX, X.UC_X86_REG_RIP, X.UC_X86_REG_RSP,
                                  X.UC_X86_REG_EFLAGS, X.UC_X86_REG_FS_BASE)
GS_BASE = X.UC_X86_REG_GS_BASE

LINUX_MXCSR = 0x1F80
LINUX_FPCW = 0x037F


def make_uc() -> Uc:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.ctl_set_cpu_model(X.UC_CPU_X86_HASWELL)   # must precede any other use
    return uc


def reset_registers(uc: Uc, entry: int, rsp: int) -> None:
    """Registers as Linux leaves them at the entry of a new process."""
    for reg in SIGCONTEXT_REGS:
        uc.reg_write(reg, 0)
    uc.reg_write(RSP, rsp)
    uc.reg_write(RIP, entry)
    uc.reg_write(EFLAGS, 0x202)
    uc.reg_write(X.UC_X86_REG_MXCSR, LINUX_MXCSR)
    uc.reg_write(X.UC_X86_REG_FPCW, LINUX_FPCW)


def hook_rdtsc(uc: Uc, read_tsc) -> list:
    """Answer RDTSC/RDTSCP from `read_tsc()` (for --deterministic runs; otherwise the guest
    reads the host TSC). Unicorn supports these instruction hooks, but its Python binding only
    exposes IN/OUT/SYSCALL/CPUID, so the callback is registered with the CPUID signature."""
    from unicorn.unicorn_py3.arch.intel import HOOK_INSN_CPUID_CFUNC
    from unicorn.unicorn_py3.unicorn import uccallback

    @uccallback(uc, HOOK_INSN_CPUID_CFUNC)
    def on_rdtsc(uc_, _key):
        tsc = read_tsc()
        uc_.reg_write(X.UC_X86_REG_RAX, tsc & 0xFFFFFFFF)
        uc_.reg_write(X.UC_X86_REG_RDX, tsc >> 32)
        return 1   # skip the built-in instruction

    add = getattr(uc, "_Uc__do_hook_add")
    add(0x2, on_rdtsc, 1, 0, X.UC_X86_INS_RDTSC)    # 0x2 = UC_HOOK_INSN
    add(0x2, on_rdtsc, 1, 0, X.UC_X86_INS_RDTSCP)
    return [on_rdtsc]


class Gpr:
    """Fast access to 64-bit registers (general-purpose, RIP, EFLAGS, FS/GS base) for the hot
    paths (every syscall reads RAX and its arguments): one ctypes call into Unicorn per access,
    without the binding's per-call register-class lookup and boxing (~5x cheaper)."""

    _SYSCALL_REGS = [RAX] + ARG_REGS

    def __init__(self, uc: Uc):
        from unicorn.unicorn_py3 import unicorn as ucmod
        self._uch = uc._uch
        self._buf = ctypes.c_uint64()
        self._ref = ctypes.byref(self._buf)
        self._read = ucmod.uclib.uc_reg_read
        self._write = ucmod.uclib.uc_reg_write
        self._batch = ucmod.uclib.uc_reg_read_batch
        n = len(self._SYSCALL_REGS)
        self._ids = (ctypes.c_int * n)(*self._SYSCALL_REGS)
        self._vals = (ctypes.c_uint64 * n)()
        base = ctypes.addressof(self._vals)
        self._ptrs = (ctypes.c_void_p * n)(*[base + 8 * i for i in range(n)])
        self._n = n

    def read(self, reg: int) -> int:
        self._read(self._uch, reg, self._ref)
        return self._buf.value

    def write(self, reg: int, value: int) -> None:
        self._buf.value = value & 0xFFFFFFFFFFFFFFFF
        self._write(self._uch, reg, self._ref)

    def syscall(self) -> list[int]:
        """[RAX, RDI, RSI, RDX, R10, R8, R9] in one call."""
        self._batch(self._uch, self._ids, self._ptrs, self._n)
        return self._vals[:]


_FXSAVE_HDR = struct.Struct("<HHBBHQQII")   # fcw, fsw, abridged ftw, -, fop, fip, fdp, mxcsr, mask
FXSAVE_SIZE = 512
_XMM = [getattr(X, f"UC_X86_REG_XMM{i}") for i in range(16)]
_FP = [getattr(X, f"UC_X86_REG_FP{i}") for i in range(8)]


def fxsave(uc: Uc) -> bytes:
    """The FPU/SSE state in FXSAVE layout: what Linux puts at uc_mcontext.fpstate in a signal
    frame (a CPU without XSAVE state beyond SSE, as goemu's advertises)."""
    tag = uc.reg_read(X.UC_X86_REG_FPTAG)
    abridged = sum(1 << i for i in range(8) if (tag >> (2 * i)) & 3 != 3)
    out = bytearray(FXSAVE_SIZE)
    _FXSAVE_HDR.pack_into(out, 0, uc.reg_read(X.UC_X86_REG_FPCW), uc.reg_read(X.UC_X86_REG_FPSW),
                          abridged, 0, 0, 0, 0, uc.reg_read(X.UC_X86_REG_MXCSR), 0xFFFF)
    for i, reg in enumerate(_FP):
        mantissa, exponent = uc.reg_read(reg)
        struct.pack_into("<QH", out, 32 + 16 * i, mantissa, exponent)
    for i, reg in enumerate(_XMM):
        out[160 + 16 * i:176 + 16 * i] = uc.reg_read(reg).to_bytes(16, "little")
    return bytes(out)


SSE_REGS = [X.UC_X86_REG_FPCW, X.UC_X86_REG_MXCSR] + _XMM


def fxrstor_sse(batch: "RegBatch", data: bytes) -> None:
    """Load the x87 control word, MXCSR and XMM0-15 (SSE_REGS, one batch write) from an FXSAVE
    image: a signal handler may have changed them in the frame; sigreturn honours that, as
    Linux does."""
    fcw, _fsw, _ftw, _r, _fop, _fip, _fdp, mxcsr, _mask = _FXSAVE_HDR.unpack_from(data)
    s = RegBatch.SLOT
    raw = struct.pack("<H", fcw).ljust(s, b"\0") + struct.pack("<I", mxcsr & 0xFFFF).ljust(s, b"\0") \
        + bytes(data[160:416])
    batch.write(raw)


class RegBatch:
    """Read or write a fixed list of registers in one uc_reg_read/write_batch call, each into
    a 16-byte slot (the Python binding costs ~25 us per register: a signal frame needs ~45)."""

    SLOT = 16

    def __init__(self, uc: Uc, regs: list[int]):
        from unicorn.unicorn_py3 import unicorn as ucmod
        self._uch = uc._uch
        self._rd, self._wr = ucmod.uclib.uc_reg_read_batch, ucmod.uclib.uc_reg_write_batch
        n = len(regs)
        self._n = n
        self._ids = (ctypes.c_int * n)(*regs)
        self._buf = (ctypes.c_uint8 * (self.SLOT * n))()
        base = ctypes.addressof(self._buf)
        self._ptrs = (ctypes.c_void_p * n)(*[base + self.SLOT * i for i in range(n)])

    def read(self) -> bytes:
        ctypes.memset(self._buf, 0, len(self._buf))
        self._rd(self._uch, self._ids, self._ptrs, self._n)
        return bytes(self._buf)

    def write(self, data: bytes) -> None:
        ctypes.memmove(self._buf, data, len(self._buf))
        self._wr(self._uch, self._ids, self._ptrs, self._n)

    @classmethod
    def pack_u64(cls, values) -> bytes:
        return b"".join(struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF).ljust(cls.SLOT, b"\0") for v in values)

    @classmethod
    def unpack_u64(cls, data: bytes) -> list[int]:
        return [int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data), cls.SLOT)]


FX_REGS = [X.UC_X86_REG_FPCW, X.UC_X86_REG_FPSW, X.UC_X86_REG_FPTAG, X.UC_X86_REG_MXCSR] + _FP + _XMM


def fxsave_fast(batch: RegBatch) -> bytes:
    """fxsave() from one batch read of FX_REGS."""
    raw = batch.read()
    s = RegBatch.SLOT
    fcw, fsw, tag = (int.from_bytes(raw[i * s:i * s + 2], "little") for i in range(3))
    mxcsr = int.from_bytes(raw[3 * s:3 * s + 4], "little")
    abridged = sum(1 << i for i in range(8) if (tag >> (2 * i)) & 3 != 3)
    out = bytearray(FXSAVE_SIZE)
    _FXSAVE_HDR.pack_into(out, 0, fcw, fsw, abridged, 0, 0, 0, 0, mxcsr, 0xFFFF)
    for i in range(8):
        out[32 + 16 * i:42 + 16 * i] = raw[(4 + i) * s:(4 + i) * s + 10]
    for i in range(16):
        out[160 + 16 * i:176 + 16 * i] = raw[(12 + i) * s:(13 + i) * s]
    return bytes(out)
