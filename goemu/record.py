"""``@record``: the part of ``dataclasses`` goemu uses, without importing it.

``dataclasses`` imports ``inspect`` (with ast, dis, tokenize): 14 ms of every `goemu run`,
for the fifteen plain records the run path defines. ``record`` builds the same methods from
the class's annotations: ``__init__`` (defaults, ``field(default_factory=...)``), ``__repr__``,
``__eq__`` (unless ``eq=False``: identity) and, with ``frozen=True``, read-only attributes and
``__hash__`` of the fields. Like dataclasses, eq without frozen leaves the class unhashable.
Classes are standalone (no inheritance of fields) and have no ClassVar annotations.
"""
from __future__ import annotations

_MISSING = object()


class _Field:
    __slots__ = ("default_factory",)

    def __init__(self, default_factory):
        self.default_factory = default_factory


def field(*, default_factory):
    return _Field(default_factory)


def record(cls=None, /, *, eq: bool = True, frozen: bool = False):
    if cls is None:
        return lambda c: _make(c, eq, frozen)
    return _make(cls, eq, frozen)


def _make(cls, eq: bool, frozen: bool):
    names = list(cls.__dict__.get("__annotations__", {}))
    env: dict = {"_MISSING": _MISSING, "_set": object.__setattr__}
    params, body = [], []
    for name in names:
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, _Field):
            env[f"_f_{name}"] = value.default_factory
            params.append(f"{name}=_MISSING")
            value_expr = f"_f_{name}() if {name} is _MISSING else {name}"
            delattr(cls, name)
        elif value is not _MISSING:
            env[f"_d_{name}"] = value
            params.append(f"{name}=_d_{name}")
            value_expr = name
        else:
            if any("=" in p for p in params):
                raise TypeError(f"{cls.__name__}: field {name} without a default follows one with")
            params.append(name)
            value_expr = name
        body.append(f"_set(self, {name!r}, {value_expr})" if frozen else f"self.{name} = {value_expr}")
    src = f"def __init__(self, {', '.join(params)}):\n    " + ("\n    ".join(body) or "pass") + "\n"
    exec(src, env)
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init
    fields = tuple(names)

    def __repr__(self):
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in fields)
        return f"{type(self).__qualname__}({inner})"
    cls.__repr__ = __repr__
    if eq:
        def __eq__(self, other):
            if other.__class__ is not self.__class__:
                return NotImplemented
            return all(getattr(self, n) == getattr(other, n) for n in fields)
        cls.__eq__ = __eq__
        if frozen:
            cls.__hash__ = lambda self: hash(tuple(getattr(self, n) for n in fields))
        else:
            cls.__hash__ = None
    if frozen:
        def __setattr__(self, name, value):
            raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")
        cls.__setattr__ = __setattr__
        cls.__delattr__ = __setattr__
    cls.__record_fields__ = fields
    return cls
