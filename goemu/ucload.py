"""Importing Unicorn's Python package without the parts of the standard library it needs only
to find its library file.

``unicorn`` (2.1.x) finds ``libunicorn.so.2`` with ``importlib.resources.files`` and
``inspect.getfile``: the two pull in zipfile, tempfile, urllib, shutil, random, ast, dis and
tokenize, ~20 ms of the ~60 ms its import takes, a tenth of `goemu run esbuild --version`.
goemu answers both questions itself for the duration of that one import (the package's
directory, a function's file) and takes the stand-ins out of ``sys.modules`` at once, so a
later ``import inspect`` gets the real module. If anything about the package is not as
expected, the ordinary import runs instead.
"""
from __future__ import annotations

import sys
import types


def load_unicorn():
    """Import and return the ``unicorn`` package (once; later calls return it)."""
    if "unicorn" in sys.modules:
        return sys.modules["unicorn"]
    stubs = {}
    if "inspect" not in sys.modules:
        inspect = types.ModuleType("inspect")
        inspect.getfile = lambda obj: obj.__code__.co_filename
        stubs["inspect"] = inspect
    if "importlib.resources" not in sys.modules:
        import pathlib
        resources = types.ModuleType("importlib.resources")
        resources.files = lambda package: pathlib.Path(sys.modules[package].__path__[0])
        stubs["importlib.resources"] = resources
    sys.modules.update(stubs)
    try:
        import unicorn
        return unicorn
    except Exception:      # a unicorn that needs more of them: import it the ordinary way
        for name in [n for n in sys.modules if n == "unicorn" or n.startswith("unicorn.")]:
            del sys.modules[name]
    finally:
        for name, module in stubs.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    import unicorn
    return unicorn
