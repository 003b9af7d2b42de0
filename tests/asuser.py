"""Run goemu as another (non-root) user: ``python3 tests/asuser.py UID GID -- run BINARY ...``.

The Python installation may live where that user cannot read (e.g. /root), so everything goemu
needs is imported first, as root, and only then are the credentials dropped, as setpriv would.
"""
from __future__ import annotations

import ctypes
import importlib
import os
import pkgutil
import sys
import threading  # noqa: F401  (goemu starts helper threads; importing later would need /root)


def main() -> int:
    uid, gid = int(sys.argv[1]), int(sys.argv[2])
    assert sys.argv[3] == "--"
    import goemu
    import unicorn
    for pkg in (goemu, unicorn):
        for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if not mod.name.endswith("__main__"):
                try:
                    importlib.import_module(mod.name)
                except ImportError:
                    pass   # optional parts (e.g. another Python version's modules)
    import encodings.idna  # noqa: F401
    from goemu import cli
    ctypes.CDLL(None)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    return cli.main(sys.argv[4:])


if __name__ == "__main__":
    sys.exit(main())
