"""Run ``goemu run FILE`` on many files from one interpreter: each file in a forked child (the
imports are paid once), stdout and stderr captured, a wall-clock limit per file.

    python3 tests/cli_batch.py LIMIT_SECONDS FILE...   ->  one JSON object per line
    python3 tests/cli_batch.py LIMIT_SECONDS --args 'trace --sym main.main -o {name}.txt {}' FILE...
                                       ({}: the file's path, {name}: its base name)

Each line: {"path", "status" (waitpid's: negative for a signal death), "stdout", "stderr",
"seconds"}. The child runs goemu's CLI entry point exactly as ``python3 -m goemu run`` would.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from goemu import cli  # noqa: E402
import goemu.kernel  # noqa: E402,F401  (imported once, before the forks)


def run_one(path: str, limit: float, tmp: str, template: list[str] | None = None) -> dict:
    out, err = os.path.join(tmp, "out"), os.path.join(tmp, "err")
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            for fd, name in ((1, out), (2, err)):
                f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(f, fd)
                os.close(f)
            sys.stdout = os.fdopen(1, "w", closefd=False)
            sys.stderr = os.fdopen(2, "w", closefd=False)
            argv = [a.replace("{name}", os.path.basename(path)).replace("{}", path) for a in template] \
                if template else ["run", path]
            status = cli.main(argv)
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else 1
        except BaseException:
            import traceback
            traceback.print_exc()
            status = 99
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)
    deadline = t0 + limit
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = None
            break
        time.sleep(0.005)
    with open(out, "rb") as f:
        stdout = f.read()
    with open(err, "rb") as f:
        stderr = f.read()
    return {"path": path, "status": None if status is None else os.waitstatus_to_exitcode(status),
            "stdout": stdout.decode("latin-1"), "stderr": stderr.decode("latin-1"),
            "seconds": time.monotonic() - t0}


def main(argv: list[str]) -> int:
    limit = float(argv[0])
    template = None
    if len(argv) > 2 and argv[1] == "--args":
        template = argv[2].split()
        argv = argv[2:]
    with tempfile.TemporaryDirectory() as tmp:
        for path in argv[1:]:
            print(json.dumps(run_one(path, limit, tmp, template)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
