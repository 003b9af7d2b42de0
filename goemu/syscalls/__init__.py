"""The syscall layer: a registry of handlers keyed by the kernel's syscall table, and the one
dispatcher that writes RAX.

A handler is ``fn(k, t, *args) -> int``: it returns the result, or raises ``LinuxError``; it
returns ``BLOCK`` after ``k.sched.block(...)`` (the result arrives with the wake-up) or
``NORESULT`` when it has set the registers itself. Handlers register with ``@syscall``, naming
the syscall (checked against ``table.NUMBERS`` at import), its argument display types for
``--strace``, and its support level for ``goemu syscalls``.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable

from ..cpu import RAX
from ..errno import ENOSYS, LinuxError
from ..record import record
from .table import BY_NAME, NUMBERS

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..thread import Thread

BLOCK = object()
NORESULT = object()

FULL, PARTIAL = "full", "partial"


@record(frozen=True)
class Handler:
    nr: int
    name: str
    fn: Callable
    args: tuple[str, ...]     # display types, one per argument the handler takes
    level: str
    note: str
    ret: str                  # display type of the result ("int", "hex", "fd")


HANDLERS: dict[int, Handler] = {}


def syscall(name: str, *args: str, level: str = FULL, note: str = "", ret: str = "int"):
    """Register a handler. Argument display types: int, uint, hex, fd, ptr, str (C string),
    buf:N (bytes, length in argument N), obuf (output bytes, length = result), size, oct,
    and named flag sets known to ``goemu.strace``."""
    if name not in BY_NAME:
        raise KeyError(f"unknown syscall name {name!r}")
    nr = BY_NAME[name]

    def register(fn: Callable) -> Callable:
        if nr in HANDLERS:
            raise KeyError(f"syscall {name} registered twice")
        HANDLERS[nr] = Handler(nr, name, fn, tuple(args), level, note, ret)
        return fn
    return register


FAMILIES = ("mm", "thread", "futex", "signal", "time", "itimer", "caps", "paths", "fs", "dirs", "meta", "proc", "pipe", "epoll", "net", "process",
            "splice")
for _family in FAMILIES:
    importlib.import_module(f"{__name__}.{_family}")


def dispatch(k: "Kernel", t: "Thread") -> None:
    """Called from the syscall hook with t's registers live in the CPU."""
    regs = k.regs
    nr, *allargs = regs.syscall()
    t.syscalls += 1
    h = HANDLERS.get(nr)
    if h is None:
        k.note_unimplemented(nr, NUMBERS.get(nr, "?"))
        result = -ENOSYS
        if k.strace is not None:
            k.strace.unknown(t, NUMBERS.get(nr, f"syscall_{nr}"), result)
        regs.write(RAX, result)
        k.clock.syscall_done()
        return
    call(k, t, h, allargs[:len(h.args)])


def call(k: "Kernel", t: "Thread", h: Handler, args: list[int]) -> None:
    """Run handler h and deliver its outcome: RAX (the one place it is written), a block, or
    registers the handler set itself; --strace sees each. (Also the int 0x80 entry's.)"""
    try:
        result = h.fn(k, t, *args)
    except LinuxError as e:
        result = -e.errno
    finally:
        sandbox = getattr(k, "sandbox", None)
        if sandbox is not None:
            sandbox.release()          # the host fds its path walks opened
    k.clock.syscall_done()
    if result is BLOCK:
        if k.strace is not None:
            k.strace.unfinished(t, h, args)
        k.stop("block")
        return
    if k.strace is not None:
        k.strace.call(t, h, args, result)
    if result is NORESULT:
        return
    k.regs.write(RAX, result)


def handler_by_nr(nr: int) -> Handler | None:
    return HANDLERS.get(nr)
