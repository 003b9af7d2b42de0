"""The x86-64 target as gdb sees it: a target description (the registers of gdb's own
64bit-core, 64bit-sse, 64bit-linux and 64bit-segments features, with fs_base/gs_base and MXCSR)
and the mapping of each gdb register number to Unicorn's registers."""
from __future__ import annotations

from unicorn import x86_const as X

GPRS = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"] + [f"r{i}" for i in range(8, 16)]
SEGS = ["cs", "ss", "ds", "es", "fs", "gs"]
FPCTL = ["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"]

# (name, bytes, unicorn register or a special kind)
REGS: list[tuple[str, int, object]] = (
    [(n, 8, getattr(X, f"UC_X86_REG_{n.upper()}")) for n in GPRS]
    + [("rip", 8, X.UC_X86_REG_RIP), ("eflags", 4, X.UC_X86_REG_EFLAGS)]
    + [(n, 4, getattr(X, f"UC_X86_REG_{n.upper()}")) for n in SEGS]
    + [(f"st{i}", 10, ("st", i)) for i in range(8)]
    + [("fctrl", 4, X.UC_X86_REG_FPCW), ("fstat", 4, X.UC_X86_REG_FPSW),
       ("ftag", 4, X.UC_X86_REG_FPTAG), ("fiseg", 4, None), ("fioff", 4, X.UC_X86_REG_FIP),
       ("foseg", 4, None), ("fooff", 4, X.UC_X86_REG_FDP), ("fop", 4, X.UC_X86_REG_FOP)]
    + [(f"xmm{i}", 16, getattr(X, f"UC_X86_REG_XMM{i}")) for i in range(16)]
    + [("mxcsr", 4, X.UC_X86_REG_MXCSR), ("orig_rax", 8, "orig_rax"),
       ("fs_base", 8, X.UC_X86_REG_FS_BASE), ("gs_base", 8, X.UC_X86_REG_GS_BASE)]
)
REGNUM = {name: i for i, (name, _, _) in enumerate(REGS)}
_FP = [getattr(X, f"UC_X86_REG_FP{i}") for i in range(8)]


def read_reg(uc, n: int) -> bytes:
    """Register n of the thread loaded in the CPU, as gdb's bytes (little-endian)."""
    name, size, reg = REGS[n]
    if reg is None:
        return bytes(size)
    if reg == "orig_rax":
        return (2**64 - 1).to_bytes(8, "little")
    if isinstance(reg, tuple):            # st(i): physical register (TOP + i) mod 8
        top = (uc.reg_read(X.UC_X86_REG_FPSW) >> 11) & 7
        mant, exp = uc.reg_read(_FP[(top + reg[1]) & 7])
        return mant.to_bytes(8, "little") + (exp & 0xFFFF).to_bytes(2, "little")
    v = uc.reg_read(reg)
    if isinstance(v, tuple):
        v = v[0]
    return (int(v) & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


WRITABLE = {name for name, _, reg in REGS if isinstance(reg, int)
            and name not in SEGS and name not in ("fioff", "fooff", "fop", "ftag", "fstat")}


def write_reg(uc, n: int, data: bytes) -> None:
    name, size, reg = REGS[n]
    if name not in WRITABLE or len(data) != size:
        return      # segment selectors, x87 bookkeeping, orig_rax: read-only here
    uc.reg_write(reg, int.from_bytes(data, "little"))


def _core() -> str:
    regs = []
    for i, (name, size, _) in enumerate(REGS[:REGNUM["xmm0"]]):
        t = {"rip": "code_ptr", "rbp": "data_ptr", "rsp": "data_ptr", "eflags": "i386_eflags"}.get(
            name, "i387_ext" if name.startswith("st") else ("int64" if size == 8 else "int32"))
        group = ' group="float"' if name in FPCTL else ""
        regs.append(f'<reg name="{name}" bitsize="{size * 8}" type="{t}" regnum="{i}"{group}/>')
    return "\n".join(regs)


_EFLAGS = ["CF", "", "PF", "AF", "ZF", "SF", "TF", "IF", "DF", "OF", "NT", "RF", "VM", "AC",
           "VIF", "VIP", "ID"]
_EFLAGS_BITS = {"CF": 0, "": 1, "PF": 2, "AF": 4, "ZF": 6, "SF": 7, "TF": 8, "IF": 9, "DF": 10,
                "OF": 11, "NT": 14, "RF": 16, "VM": 17, "AC": 18, "VIF": 19, "VIP": 20, "ID": 21}
_MXCSR = ["IE", "DE", "ZE", "OE", "UE", "PE", "DAZ", "IM", "DM", "ZM", "OM", "UM", "PM", "FZ"]


def description() -> str:
    eflags = "".join(f'<field name="{f}" start="{b}" end="{b}"/>' for f, b in _EFLAGS_BITS.items())
    mxcsr = "".join(f'<field name="{f}" start="{i}" end="{i}"/>' for i, f in enumerate(_MXCSR))
    xmm = "\n".join(f'<reg name="xmm{i}" bitsize="128" type="vec128" regnum="{REGNUM["xmm0"] + i}"/>'
                    for i in range(16))
    return f"""<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
<architecture>i386:x86-64</architecture>
<osabi>GNU/Linux</osabi>
<feature name="org.gnu.gdb.i386.core">
<flags id="i386_eflags" size="4">{eflags}</flags>
{_core()}
</feature>
<feature name="org.gnu.gdb.i386.sse">
<vector id="v8bf16" type="bfloat16" count="8"/>
<vector id="v4f" type="ieee_single" count="4"/>
<vector id="v2d" type="ieee_double" count="2"/>
<vector id="v16i8" type="int8" count="16"/>
<vector id="v8i16" type="int16" count="8"/>
<vector id="v4i32" type="int32" count="4"/>
<vector id="v2i64" type="int64" count="2"/>
<union id="vec128">
<field name="v8_bfloat16" type="v8bf16"/><field name="v4_float" type="v4f"/>
<field name="v2_double" type="v2d"/><field name="v16_int8" type="v16i8"/>
<field name="v8_int16" type="v8i16"/><field name="v4_int32" type="v4i32"/>
<field name="v2_int64" type="v2i64"/><field name="uint128" type="uint128"/>
</union>
<flags id="i386_mxcsr" size="4">{mxcsr}</flags>
{xmm}
<reg name="mxcsr" bitsize="32" type="i386_mxcsr" group="vector" regnum="{REGNUM["mxcsr"]}"/>
</feature>
<feature name="org.gnu.gdb.i386.linux">
<reg name="orig_rax" bitsize="64" type="int" regnum="{REGNUM["orig_rax"]}"/>
</feature>
<feature name="org.gnu.gdb.i386.segments">
<reg name="fs_base" bitsize="64" type="int" regnum="{REGNUM["fs_base"]}"/>
<reg name="gs_base" bitsize="64" type="int" regnum="{REGNUM["gs_base"]}"/>
</feature>
</target>
"""


# Linux signal numbers -> gdb's (target-independent) signal numbers, both ways
_LINUX_TO_GDB = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 10, 8: 8, 9: 9, 10: 30, 11: 11, 12: 31,
                 13: 13, 14: 14, 15: 15, 16: 0, 17: 20, 18: 19, 19: 17, 20: 18, 21: 21, 22: 22,
                 23: 16, 24: 24, 25: 25, 26: 26, 27: 27, 28: 28, 29: 23, 30: 32, 31: 12}
_LINUX_TO_GDB.update({n: 45 + (n - 33) for n in range(33, 64)})   # SIGRTMIN.. -> REALTIME_33..
_LINUX_TO_GDB[32] = 77
_GDB_TO_LINUX = {g: n for n, g in _LINUX_TO_GDB.items() if g}


def gdb_signal(linux: int) -> int:
    return _LINUX_TO_GDB.get(linux, 143)    # 143: GDB_SIGNAL_UNKNOWN


def linux_signal(gdb: int) -> int:
    return _GDB_TO_LINUX.get(gdb, 0)
