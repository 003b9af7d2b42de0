"""The help text of `goemu debug` (kept apart so the CLI need not import the debugger)."""

HELP = """goemu debug: an interactive, scriptable stepper for the Go runtime's own code.

Commands (one per line; from -x FILE, or stdin; '#' starts a comment):
  break SYMBOL|ADDR|FILE:LINE   set a breakpoint (b)
  delete [N]                    remove breakpoint N (all without N)
  run | continue                run until a breakpoint or the end (r, c)
  stepi [N]                     execute N instructions of the current thread (si)
  nexti [N]                     like stepi, but step over calls (ni)
  finish                        run until the current function returns
  regs                          registers of the current thread
  x/FMT ADDR|$reg               memory: FMT = [count][x|d|s|i][b|h|w|g], e.g. x/4xg $rsp
  disas [ADDR|SYMBOL]           disassemble (the current function from pc by default)
  bt                            Go backtrace of the current thread (pclntab unwinding)
  threads                       guest threads as Ms: tid, M id, P, current G, state
  thread TID                    make TID the current thread
  goroutines                    all goroutines (allgs): goid, status, wait reason, function
  sched                         schedt and the Ps
  info symbol ADDR              the function (and file:line) containing ADDR
  quit                          end the session (the guest is not run further)
The program's own stdout/stderr are unchanged; the debugger writes to stdout.
"""
