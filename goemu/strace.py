"""strace-style syscall log: ``[tid] name(decoded args) = result``.

Argument formatting is derived from each handler's declared display types (see
``goemu.syscalls.syscall``), never written per call.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from . import errno as E

if TYPE_CHECKING:
    from .kernel import Kernel
    from .syscalls import Handler
    from .thread import Thread

FLAG_SETS: dict[str, dict[int, str]] = {
    "prot": {1: "PROT_READ", 2: "PROT_WRITE", 4: "PROT_EXEC"},
    "mapflags": {0x01: "MAP_SHARED", 0x02: "MAP_PRIVATE", 0x10: "MAP_FIXED", 0x20: "MAP_ANONYMOUS",
                 0x100: "MAP_GROWSDOWN", 0x4000: "MAP_NORESERVE", 0x8000: "MAP_POPULATE",
                 0x20000: "MAP_STACK", 0x100000: "MAP_FIXED_NOREPLACE"},
    "openflags": {0o1: "O_WRONLY", 0o2: "O_RDWR", 0o100: "O_CREAT", 0o200: "O_EXCL", 0o400: "O_NOCTTY",
                  0o1000: "O_TRUNC", 0o2000: "O_APPEND", 0o4000: "O_NONBLOCK", 0o200000: "O_DIRECTORY",
                  0o400000: "O_NOFOLLOW", 0o2000000: "O_CLOEXEC", 0o10000000: "O_PATH"},
    "cloneflags": {0x100: "CLONE_VM", 0x200: "CLONE_FS", 0x400: "CLONE_FILES", 0x800: "CLONE_SIGHAND",
                   0x4000: "CLONE_VFORK", 0x10000: "CLONE_THREAD", 0x40000: "CLONE_SYSVSEM",
                   0x80000: "CLONE_SETTLS", 0x100000: "CLONE_PARENT_SETTID",
                   0x200000: "CLONE_CHILD_CLEARTID", 0x1000000: "CLONE_CHILD_SETTID"},
    "atflags": {0x100: "AT_SYMLINK_NOFOLLOW", 0x200: "AT_REMOVEDIR", 0x400: "AT_SYMLINK_FOLLOW",
                0x800: "AT_NO_AUTOMOUNT", 0x1000: "AT_EMPTY_PATH"},
    "accessmode": {4: "R_OK", 2: "W_OK", 1: "X_OK"},
    "grndflags": {1: "GRND_NONBLOCK", 2: "GRND_RANDOM", 4: "GRND_INSECURE"},
    "flockop": {1: "LOCK_SH", 2: "LOCK_EX", 4: "LOCK_NB", 8: "LOCK_UN"},
}
ENUMS: dict[str, dict[int, str]] = {
    "futexop": {0: "FUTEX_WAIT", 1: "FUTEX_WAKE", 9: "FUTEX_WAIT_BITSET", 10: "FUTEX_WAKE_BITSET",
                128: "FUTEX_WAIT_PRIVATE", 129: "FUTEX_WAKE_PRIVATE",
                137: "FUTEX_WAIT_BITSET_PRIVATE", 138: "FUTEX_WAKE_BITSET_PRIVATE"},
    "sighow": {0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"},
    "dirfd": {0xFFFFFF9C: "AT_FDCWD"},
    "archprctl": {0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS", 0x1004: "ARCH_GET_GS"},
    "fcntlcmd": {0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL",
                 5: "F_GETLK", 6: "F_SETLK", 7: "F_SETLKW", 36: "F_OFD_GETLK", 37: "F_OFD_SETLK",
                 38: "F_OFD_SETLKW", 1030: "F_DUPFD_CLOEXEC", 1031: "F_SETPIPE_SZ",
                 1032: "F_GETPIPE_SZ", 1033: "F_ADD_SEALS", 1034: "F_GET_SEALS"},
    "whence": {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"},
    "ioctlcmd": {0x5401: "TCGETS", 0x5402: "TCSETS", 0x5403: "TCSETSW", 0x5404: "TCSETSF",
                 0x540F: "TIOCGPGRP", 0x5413: "TIOCGWINSZ", 0x5414: "TIOCSWINSZ",
                 0x541B: "FIONREAD", 0x5421: "FIONBIO", 0x5450: "FIONCLEX", 0x5451: "FIOCLEX"},
    "rlimit": {0: "RLIMIT_CPU", 1: "RLIMIT_FSIZE", 2: "RLIMIT_DATA", 3: "RLIMIT_STACK",
               4: "RLIMIT_CORE", 5: "RLIMIT_RSS", 6: "RLIMIT_NPROC", 7: "RLIMIT_NOFILE",
               8: "RLIMIT_MEMLOCK", 9: "RLIMIT_AS", 10: "RLIMIT_LOCKS", 11: "RLIMIT_SIGPENDING",
               12: "RLIMIT_MSGQUEUE", 13: "RLIMIT_NICE", 14: "RLIMIT_RTPRIO", 15: "RLIMIT_RTTIME"},
    "prctlop": {1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE",
                4: "PR_SET_DUMPABLE", 15: "PR_SET_NAME", 16: "PR_GET_NAME",
                38: "PR_SET_NO_NEW_PRIVS", 39: "PR_GET_NO_NEW_PRIVS"},
    "clockid": {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
                3: "CLOCK_THREAD_CPUTIME_ID", 4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE",
                6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME"},
}


def _flags(value: int, names: dict[int, str]) -> str:
    parts = []
    rest = value
    for b, n in names.items():
        if value & b == b and b:
            parts.append(n)
            rest &= ~b
    if rest or not parts:
        parts.append(hex(rest) if parts else str(rest) if rest < 10 else hex(rest))
    return "|".join(parts)


def _signed(v: int, bits: int = 64) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _quote(data: bytes, limit: int = 32) -> str:
    out = []
    for b in data[:limit]:
        c = chr(b)
        if c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c in "\"\\":
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\x{b:02x}")
    return '"' + "".join(out) + '"' + ("..." if len(data) > limit else "")


class Strace:
    def __init__(self, k: "Kernel", out: TextIO):
        self.k = k
        self.out = out

    def fmt_arg(self, kind: str, value: int, args: list[int], result) -> str:
        mem = self.k.mem
        try:
            if kind in ("int", "fd"):
                return str(_signed(value, 32))
            if kind in ("size", "uint"):
                return str(value)
            if kind == "long":
                return str(_signed(value))
            if kind == "oct":
                return oct(value)
            if kind == "sig":
                from .signals import name
                return name(value) if value else "0"
            if kind == "ptr" or kind == "hex":
                return "NULL" if kind == "ptr" and value == 0 else hex(value)
            if kind == "str":
                return "NULL" if value == 0 else _quote(mem.read_cstr(value), 96)
            if kind.startswith("buf:"):
                n = args[int(kind[4:])]
                return _quote(mem.read(value, min(n, 32)) + (b"\0" * 0 if n <= 32 else b"."), 32)
            if kind == "obuf":
                if isinstance(result, int) and result > 0:
                    return _quote(mem.read(value, min(result, 33)), 32)
                return hex(value)
            if kind in FLAG_SETS:
                return _flags(value, FLAG_SETS[kind])
            if kind in ENUMS:
                return ENUMS[kind].get(value & 0xFFFFFFFF, str(_signed(value, 32)))
        except E.LinuxError:
            return hex(value)
        return hex(value)

    def fmt_result(self, result, ret: str) -> str:
        if not isinstance(result, int):
            return "?"
        if -4095 <= result < 0:
            e = -result
            return f"-1 {E.name(e)} ({E.message(e)})"
        if ret == "hex":
            return hex(result)
        if ret == "oct":
            return oct(result)
        return str(result)

    def call(self, t: "Thread", h: "Handler", args: list[int], result) -> None:
        shown = ", ".join(self.fmt_arg(kind, v, args, result) for kind, v in zip(h.args, args))
        self.out.write(f"[{t.tid}] {h.name}({shown}) = {self.fmt_result(result, h.ret)}\n")
        self.out.flush()

    def unfinished(self, t: "Thread", h: "Handler", args: list[int]) -> None:
        shown = ", ".join(self.fmt_arg(kind, v, args, None) for kind, v in zip(h.args, args))
        self.out.write(f"[{t.tid}] {h.name}({shown} <unfinished ...>\n")
        self.out.flush()

    def resumed(self, t: "Thread", nr: int, result: int) -> None:
        from .syscalls.table import NUMBERS
        name = NUMBERS.get(nr, str(nr))
        self.out.write(f"[{t.tid}] <... {name} resumed> = {self.fmt_result(result, 'int')}\n")
        self.out.flush()

    def unknown(self, t: "Thread", name: str, result: int) -> None:
        """A syscall without a handler: its arguments have no declared types to show."""
        self.out.write(f"[{t.tid}] {name}(...) = {self.fmt_result(result, 'int')}\n")
        self.out.flush()

    def text(self, t: "Thread", text: str) -> None:
        self.out.write(f"[{t.tid}] {text}\n")
        self.out.flush()
