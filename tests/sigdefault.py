"""Start a program with every signal at SIG_DFL, as a fresh login shell would.

Linux keeps SIG_IGN across execve, and what a parent left ignored changes the Go runtime's own
start-up (Go leaves an ignored SIGHUP, SIGINT or real-time signal 32 alone): a golden trace must
not depend on whether the CI runner ignores signal 32. Python's signal module cannot reset 32
and 33 (glibc reserves them), so this uses rt_sigaction directly.

    python tests/sigdefault.py CMD ARGS...     (or preexec_fn=sigdefault.reset)
"""
import ctypes
import os
import sys


def reset() -> None:
    libc = ctypes.CDLL(None)
    act = (ctypes.c_ulong * 4)(0, 0, 0, 0)     # SIG_DFL, no flags, no restorer, empty mask
    for sig in range(1, 65):
        if sig not in (9, 19):
            libc.syscall(13, sig, ctypes.byref(act), None, 8)
    empty = ctypes.c_ulong(0)
    libc.syscall(14, 2, ctypes.byref(empty), None, 8)   # rt_sigprocmask(SIG_SETMASK, {})


if __name__ == "__main__":
    reset()
    os.execvp(sys.argv[1], sys.argv[1:])
