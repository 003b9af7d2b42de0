"""Write goemu's fast launcher: ``python3 -m goemu.launcher [PATH]`` (run by ``make install``).

pip's console script starts the interpreter with ``site``, which reads every ``.pth`` file in
site-packages (an editable install's finder among them) before goemu's first line runs: ~40 ms
of a ~150 ms ``goemu run esbuild --version``. The launcher runs Python with ``-S`` and puts on
``sys.path`` exactly the directories ``site`` would have found goemu and its dependencies in.
It replaces the console script next to the interpreter (or writes PATH).
"""
from __future__ import annotations

import os
import site
import sys

TEMPLATE = """#!{python} -S
# goemu's fast launcher, written by `python3 -m goemu.launcher` (make install): the interpreter
# starts without `site` (-S); these are the directories it would have put on sys.path.
import sys
sys.path[1:1] = {paths!r}
from goemu.cli import main
sys.exit(main())
"""


def launcher_text() -> str:
    import goemu
    import unicorn
    pkg_root = os.path.dirname(os.path.dirname(os.path.realpath(goemu.__file__)))
    paths = [pkg_root]
    for d in site.getsitepackages() + [os.path.dirname(os.path.dirname(os.path.realpath(unicorn.__file__)))]:
        if d not in paths and os.path.isdir(d):
            paths.append(d)
    return TEMPLATE.format(python=os.path.realpath(sys.executable), paths=paths)


def main(argv: list[str]) -> int:
    target = argv[0] if argv else os.path.join(os.path.dirname(sys.executable), "goemu")
    tmp = target + ".tmp"
    with open(tmp, "w") as f:
        f.write(launcher_text())
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    print(f"goemu: fast launcher written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
