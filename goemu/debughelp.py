"""The help text of `goemu debug` (kept apart so the CLI need not import the debugger): the
summary (`goemu debug --help`, `help`) and each command's own (`help CMD`)."""

# (name, aliases, usage, one line, more)
COMMANDS = [
    ("break", ["b"], "break SYMBOL|FILE:LINE|*EXPR [if COND]",
     "set a breakpoint, stopping only when COND holds",
     "The location is a function (runtime.newproc), FILE:LINE (proc.go:3376) or *EXPR, an\n"
     "address expression (break *runtime.main+0x10, break *$rip). COND is an expression\n"
     "evaluated on the thread that reached the breakpoint, e.g.\n"
     "  break main.spin if $rax == 2\n"
     "It is evaluated inside the engine's hook: a false condition costs no stop."),
    ("tbreak", ["tb"], "tbreak SYMBOL|FILE:LINE|*EXPR [if COND]",
     "a one-shot breakpoint, deleted when it stops",
     "Reported as `Temporary breakpoint N, ...`; then it is gone from info breakpoints."),
    ("condition", [], "condition N [COND]", "set (or, without COND, remove) breakpoint N's condition", ""),
    ("watch", [], "watch [-l] LVALUE",
     "stop when LVALUE changes: old, new value, the writing pc",
     "LVALUE: *EXPR (8 bytes), *(uint32*)EXPR (int8..uint64, byte, uintptr: 1, 2, 4, 8 bytes),\n"
     "or a data symbol (its size). -l ADDR watches 8 bytes at the address ADDR. As gdb, a store\n"
     "of the same value does not stop. Watchpoints are memory hooks over the watched bytes\n"
     "only, present while a watchpoint exists: a run without them pays nothing."),
    ("rwatch", [], "rwatch [-l] LVALUE", "stop after an instruction reads LVALUE", ""),
    ("awatch", [], "awatch [-l] LVALUE", "stop after an instruction reads or writes LVALUE", ""),
    ("delete", ["d"], "delete [N...]", "remove breakpoints/watchpoints N (all without N)", ""),
    ("disable", ["dis"], "disable [N...]", "disable breakpoints/watchpoints N (all without N)",
     "A disabled one keeps its number, condition and hit count but never stops the program;\n"
     "its hook is removed while no enabled one is at that place, so it costs nothing."),
    ("enable", ["en"], "enable [N...]", "enable breakpoints/watchpoints N again (all without N)",
     "A watchpoint enabled again reports changes from the value it has then."),
    ("run", ["r"], "run", "run until a breakpoint, watchpoint, Ctrl-C or the end",
     "Ctrl-C (SIGINT to goemu) stops every thread and returns to the prompt; the program does\n"
     "not see it. At the prompt, Ctrl-C twice (or end of input, or quit) leaves."),
    ("continue", ["c"], "continue", "go on from a stop (as run)", ""),
    ("stepi", ["si"], "stepi [N]", "N instructions of the current thread (others stay still)",
     "A blocked thread first waits (the others run) until it wakes. Enter repeats."),
    ("nexti", ["ni"], "nexti [N]", "like stepi, but step over calls", ""),
    ("finish", [], "finish", "run until the current function returns; print what it returned",
     "Its own frame: a recursive call returning to the same address does not stop it, and the\n"
     "goroutine is followed to whichever thread it returns on. Then `Value returned: name=value\n"
     "...`, the results read as goemu trace --ret reads them: the binary's DWARF names and types,\n"
     "the Go 1.14 stack ABI or the Go >= 1.17 register ABI (~r0: an unnamed result)."),
    ("regs", [], "regs", "registers of the current thread (info registers REG...)", ""),
    ("x", [], "x/FMT EXPR", "examine memory: FMT = [count][x|d|u|c|s|i][b|h|w|g]",
     "x/4xg $rsp (4 giant words in hex), x/16xb ADDR, x/3i $pc, x/s ADDR. Enter goes on where\n"
     "the last x ended. x/s: at a Go string header {ptr, len} it prints the string it points\n"
     "to; elsewhere the bytes up to a NUL or 200 bytes (Go's string data has no NUL)."),
    ("print", ["p"], "print[/x|/d] EXPR | g | m | p | sched | G N | M N | P N",
     "an expression, or a runtime structure, every field",
     "EXPR: numbers, $rax..$r15 $rip $pc $sp $fp $eflags $fs_base $eax.., $g $m $p $goid (the\n"
     "current thread's), $1 $2.. (earlier values), symbols (their address; a data symbol's\n"
     "contents are shown too, a Go string variable as a string), + - * / % << >> & | ^ ~ !\n"
     "== != < <= > >= && ||, parentheses, *EXPR (8 bytes), *(int32*)EXPR etc., &LVALUE.\n"
     "print g / m / p: the current thread's (or the selected goroutine's g); print sched:\n"
     "runtime.sched; print G 5: the g whose goid is 5 (M N, P N likewise). Field names come\n"
     "from the binary's DWARF, else from goemu's table for the Go version."),
    ("disas", [], "disas [EXPR]", "disassemble (the current function from pc by default)", ""),
    ("bt", ["where", "backtrace"], "bt [N]",
     "Go backtrace of the current thread (or goroutine)",
     "On g0 after a stack switch it goes on with m.curg's frames from its saved context."),
    ("threads", [], "threads", "guest threads as Ms: tid, M id, P, current G, state", ""),
    ("thread", [], "thread TID", "make TID the current thread", ""),
    ("goroutines", [], "goroutines",
     "goid, status, wait reason, where, stack [lo, hi), M, thread",
     "A running goroutine is where its thread is (not its stale g.sched); a parked one is\n"
     "where g.sched says; one in a syscall where g.syscallpc says. '*' marks the current."),
    ("goroutine", [], "goroutine [N [bt [DEPTH]]]",
     "select goroutine N, or show its backtrace", ""),
    ("sched", [], "sched",
     "counts, global runq, idle Ps and Ms, each P's runnext and runq", ""),
    ("info", ["i"], "info breakpoints|watchpoints|registers|threads|goroutines|symbol EXPR",
     "lists; info symbol: the function and file:line of an address",
     "info breakpoints: number, type, disposition (keep, or del for tbreak), enabled (y/n),\n"
     "address, where (function+offset file:line, or the watched lvalue), the condition and\n"
     "the hit count."),
    ("help", ["h"], "help [CMD]", "this list, or one command's help", ""),
    ("quit", ["q", "exit"], "quit", "end the session (the guest is not run further)", ""),
]

ALIASES = {a: name for name, aliases, *_ in COMMANDS for a in aliases}
REPEATABLE = {"stepi", "nexti", "continue", "finish", "x"}


def summary() -> str:
    width = max(len(c[2]) for c in COMMANDS if len(c[2]) <= 40)
    lines = []
    for name, aliases, usage, short, _ in COMMANDS:
        al = f" ({', '.join(aliases)})" if aliases else ""
        if len(usage) > width:
            lines.append(f"  {usage}\n  {'':<{width}}  {short}{al}")
        else:
            lines.append(f"  {usage:<{width}}  {short}{al}")
    return "\n".join(lines)


def command_help(word: str) -> str | None:
    name = ALIASES.get(word, word)
    for n, aliases, usage, short, more in COMMANDS:
        if n == name:
            al = f"  (aliases: {', '.join(aliases)})" if aliases else ""
            return f"{usage}{al}\n  {short}" + ("\n\n" + more if more else "")
    return None


HELP = f"""goemu debug: an interactive, scriptable debugger for Go programs and the Go runtime.

Commands (one per line; from -x FILE, or stdin; '#' starts a comment). On a terminal: line
editing, history (~/.goemu_history), Tab completes commands and symbols; an empty line repeats
stepi, nexti, continue, finish and x (which goes on where it ended), as in gdb.
{summary()}
The program's own stdout/stderr are unchanged; the debugger writes to stdout. goemu ends
with the program's status, or, when a signal killed it, dies of that signal (as goemu run).
"""
