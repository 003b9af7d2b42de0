"""Expressions of `goemu debug` (in `print`, `x`, `break *EXPR`, conditions and `watch`).

    numbers      42  0x2a  0o52  0b101010
    registers    $rax ... $r15  $rip ($pc)  $rsp ($sp)  $rbp ($fp)  $eflags  $fs_base
    convenience  $g $m $p (the current thread's g, m and p pointers)  $goid
    history      $1, $2, ... (print's earlier values)
    symbols      runtime.main  main.counter  runtime.(*mheap).alloc   (their address)
    operators    unary - ! ~ & *;  * / %;  + -;  << >>;  < <= > >=;  == !=;  &;  ^;  |;  &&;  ||
    dereference  *EXPR (8 bytes), *(uint32*)EXPR (int8/uint8/byte/bool, int16/uint16,
                 int32/uint32, int64/uint64/int/uint/uintptr)

A dereference is an lvalue: `&*(uint32*)X` is X, and `watch` watches its address and width. A
data symbol is an lvalue too (its address, the symbol's size when 1, 2, 4 or 8 bytes).
Arithmetic is Python's (unbounded); == and != compare modulo 2**64, so `$rax == -1` holds
when rax is all ones.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

MASK = (1 << 64) - 1
TYPES = {"int8": (1, True), "uint8": (1, False), "byte": (1, False), "bool": (1, False),
         "int16": (2, True), "uint16": (2, False), "int32": (4, True), "uint32": (4, False),
         "rune": (4, True), "int64": (8, True), "uint64": (8, False), "int": (8, True),
         "uint": (8, False), "uintptr": (8, False)}

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<num>0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|\d+)
    | (?P<var>\$\w+)
    | (?P<sym>[A-Za-z_][\w/·]*(?:\.(?:\(\*?[\w·]+\)|[\w·]*))*)
    | (?P<op>&&|\|\||<<|>>|<=|>=|==|!=|[-+*/%()<>&|^!~])
    )""", re.X)

# binary operators: precedence (higher binds tighter)
BINARY = {"||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6, "<": 7, "<=": 7, ">": 7,
          ">=": 7, "<<": 8, ">>": 8, "+": 9, "-": 9, "*": 10, "/": 10, "%": 10}


class ExprError(Exception):
    pass


@dataclass
class Value:
    value: int
    lval: Optional[tuple[int, int, bool]] = None    # (address, width, signed) of an lvalue


@dataclass
class Context:
    """What an expression can see: reg(name) -> int (KeyError: no such register),
    symbol(name) -> (address, size) or None, read(addr, n) -> bytes (raises ExprError)."""
    reg: Callable[[str], int]
    symbol: Callable[[str], Optional[tuple[int, int]]]
    read: Callable[[int, int], bytes]


def tokenize(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"unexpected {text[pos:].strip()[:20]!r} in {text!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent to a tree of closures: an expression is parsed once (a breakpoint's
    condition is then a few Python calls per hit) and run on any Context."""

    def __init__(self, tokens: list[tuple[str, str]], text: str):
        self.toks, self.i, self.text = tokens, 0, text

    def peek(self, k: int = 0) -> tuple[str, str] | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise ExprError(f"incomplete expression {self.text!r}")
        self.i += 1
        return tok

    def expect(self, op: str) -> None:
        tok = self.take()
        if tok != ("op", op):
            raise ExprError(f"expected {op!r}, got {tok[1]!r} in {self.text!r}")

    def binary(self, level: int = 1) -> Callable[[Context], Value]:
        left = self.unary()
        while True:
            tok = self.peek()
            if tok is None or tok[0] != "op" or BINARY.get(tok[1], 0) < level:
                return left
            op = tok[1]
            self.i += 1
            right = self.binary(BINARY[op] + 1)
            left = (lambda a, b, op: lambda c: Value(_apply(op, a(c).value, b(c).value)))(left, right, op)

    def _typed_deref(self) -> Optional[str]:
        """After '*': '(' TYPE '*' ')' -> TYPE (consumed), else None."""
        toks = [self.peek(k) for k in range(4)]
        if toks[0] == ("op", "(") and toks[1] and toks[1][0] == "sym" and toks[1][1] in TYPES \
                and toks[2] == ("op", "*") and toks[3] == ("op", ")"):
            self.i += 4
            return toks[1][1]
        return None

    def unary(self) -> Callable[[Context], Value]:
        kind, text = self.take()
        if kind == "op":
            if text == "-":
                f = self.unary()
                return lambda c: Value(-f(c).value)
            if text == "!":
                f = self.unary()
                return lambda c: Value(int(not f(c).value))
            if text == "~":
                f = self.unary()
                return lambda c: Value(~f(c).value & MASK)
            if text == "&":
                f = self.unary()
                where = self.text

                def addr(c):
                    v = f(c)
                    if v.lval is None:
                        raise ExprError(f"& needs an lvalue (a dereference or a data symbol) in {where!r}")
                    return Value(v.lval[0])
                return addr
            if text == "*":
                typ = self._typed_deref()
                width, signed = TYPES[typ] if typ else (8, False)
                f = self.unary()
                return lambda c: _deref(c, f(c).value & MASK, width, signed)
            if text == "(":
                f = self.binary()
                self.expect(")")
                return f
            raise ExprError(f"unexpected {text!r} in {self.text!r}")
        if kind == "num":
            v = Value(int(text, 0))
            return lambda c: v
        if kind == "var":
            name = text[1:]

            def reg(c):
                try:
                    return Value(c.reg(name))
                except KeyError:
                    raise ExprError(f"no register or variable {text}") from None
            return reg

        def sym(c):
            s = c.symbol(text)
            if s is None:
                raise ExprError(f"no symbol {text!r}")
            addr, size = s
            return Value(addr, (addr, size if size in (1, 2, 4, 8) else 8, False))
        return sym


def _deref(ctx: Context, addr: int, width: int, signed: bool) -> Value:
    raw = ctx.read(addr, width)
    return Value(int.from_bytes(raw, "little", signed=signed), (addr, width, signed))


def _apply(op: str, a: int, b: int) -> int:
    if op in ("/", "%"):
        if b == 0:
            raise ExprError("division by zero")
        return a // b if op == "/" else a % b
    if op == "==":
        return int(a & MASK == b & MASK)
    if op == "!=":
        return int(a & MASK != b & MASK)
    return {"||": lambda: int(bool(a) or bool(b)), "&&": lambda: int(bool(a) and bool(b)),
            "|": lambda: a | b, "^": lambda: a ^ b, "&": lambda: a & b,
            "<": lambda: int(a < b), "<=": lambda: int(a <= b), ">": lambda: int(a > b),
            ">=": lambda: int(a >= b), "<<": lambda: a << min(b, 128), ">>": lambda: a >> b,
            "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b}[op]()


@lru_cache(maxsize=256)
def compile_expr(text: str) -> Callable[[Context], Value]:
    """Expression `text` parsed once: a function of a Context (ExprError for bad syntax now,
    for unknown names, registers or unreadable memory when it runs)."""
    toks = tokenize(text)
    if not toks:
        raise ExprError("an expression is needed")
    p = _Parser(toks, text.strip())
    f = p.binary()
    if p.peek() is not None:
        raise ExprError(f"unexpected {p.peek()[1]!r} in {text.strip()!r}")
    return f


def evaluate(text: str, ctx: Context) -> Value:
    """The value of expression `text` (an lvalue when it is a dereference or a data symbol)."""
    return compile_expr(text)(ctx)
