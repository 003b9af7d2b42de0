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

from goemu.process import raw_disposition


def reset() -> None:
    for sig in range(1, 65):
        raw_disposition(sig, ignore=False)
    empty = ctypes.c_ulong(0)
    ctypes.CDLL(None).syscall(14, 2, ctypes.byref(empty), None, 8)   # rt_sigprocmask(SIG_SETMASK, {})


if __name__ == "__main__":
    reset()
    os.execvp(sys.argv[1], sys.argv[1:])
