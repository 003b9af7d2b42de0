"""goemu's command line: ``goemu run``, ``goemu syscalls``.

Exit statuses: the guest's own; when the guest dies of signal N, goemu dies of signal N too
(as qemu-user does; no core file), so a shell or waitpid sees a signal death (128+N in $?);
126 for a file that cannot be run; 127 for a file that does not exist; 2 for usage errors; 70
for an internal error. A file Linux's execve accepts but then cannot map (past its point of no
return) ends as it does natively: one line, then death by SIGSEGV.
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys

from . import __version__

EXIT_NOT_FOUND = 127
EXIT_CANNOT_RUN = 126
EXIT_SANDBOX = 125          # the sandbox cannot be set up (as chroot(1) exits 125)
EXIT_INTERNAL = 70


def _env(args) -> list[str]:
    if args.ignore_env:
        env = {}
    elif args.root and not args.keep_env:
        from .sandbox import minimal_env
        env = minimal_env()
    else:
        env = dict(os.environ)
    for unset in args.unset or []:
        env.pop(unset, None)
    for item in args.env or []:
        if "=" not in item:
            raise SystemExit(f"goemu: -E expects VAR=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        env[key] = value
    return [f"{k}={v}" for k, v in env.items()]


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-E", "--env", dest="env", action="append", metavar="VAR=VALUE",
                   help="set an environment variable for the guest (as qemu-user's -E)")
    p.add_argument("-U", dest="unset", action="append", metavar="VAR",
                   help="remove a variable from the guest's environment (as qemu-user's -U)")
    p.add_argument("-i", "--ignore-environment", dest="ignore_env", action="store_true",
                   help="start the guest with an empty environment (then -E adds to it), as env -i")
    p.add_argument("--argv0", help="argv[0] the guest sees (default: BINARY as given)")
    p.add_argument("--strace", action="store_true", help="log every syscall on stderr, strace style")
    p.add_argument("-v", "--verbose", action="store_true", help="notes: unimplemented syscalls, ...")
    p.add_argument("--deterministic", action="store_true",
                   help="virtual clock, fixed pid and random seed, instruction-count slices: the "
                        "same input gives the same interleaving, output and syscall log. It cannot "
                        "make reproducible what comes from outside: stdin, files that change, the "
                        "network and host programs talking to the guest, host signals, the timing "
                        "of subprocesses (os/exec), and when the host kernel delivers data on "
                        "sockets, loopback included (pipes between the guest's own threads are "
                        "reproducible).")
    p.add_argument("--follow-exec", action="store_true",
                   help="when the guest execs a static x86-64 binary (os/exec), run it under goemu too")
    p.add_argument("--exit-by-signal", action="store_true", help=argparse.SUPPRESS)  # always so now
    p.add_argument("--cpus", type=int, default=0, metavar="N",
                   help="CPUs the guest sees (sched_getaffinity; sets Go's default GOMAXPROCS)")
    p.add_argument("--slice", type=int, default=0, metavar="INSNS",
                   help="with --deterministic: guest instructions per slice (default 200000)")
    p.add_argument("--timeslice", type=float, default=0, metavar="MS",
                   help="host milliseconds per slice before another guest thread gets the CPU (default 2)")
    sb = p.add_argument_group("sandbox (docs/sandbox.md)")
    sb.add_argument("--root", metavar="DIR",
                    help="confine the guest to DIR as its / (as chroot, but '..', symlinks and /proc "
                         "cannot lead out); it starts in goemu's directory if that lies inside, else "
                         "in /; its environment is fresh (PATH, HOME=/, TERM) unless --keep-env; its "
                         "execs run under goemu with the same confinement; /proc/self is the guest's, "
                         "the rest of /proc is absent")
    sb.add_argument("--bind", action="append", metavar="HOST:GUEST[:ro]",
                    help="with --root: show host directory HOST at GUEST, read-write, or read-only "
                         "with :ro (EROFS); repeatable")
    sb.add_argument("--net", choices=["host", "loopback", "none"],
                    help="with --root: the network: host (default), loopback (127.0.0.1 and ::1 "
                         "only; binding to all interfaces is refused), none (only Unix sockets, "
                         "paths inside the root; other families EACCES)")
    sb.add_argument("--no-net", action="store_true", help="with --root: --net=none")
    sb.add_argument("--no-exec", action="store_true", help="with --root: execve fails with EACCES")
    sb.add_argument("--keep-env", action="store_true",
                    help="with --root: the guest gets goemu's environment (then -E/-U)")
    sb.add_argument("--guest-cwd", help=argparse.SUPPRESS)      # a sandboxed exec's directory
    sb.add_argument("--exe-fd", type=int, help=argparse.SUPPRESS)  # ... and its binary, opened
    p.add_argument("binary", metavar="BINARY")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")


COMMANDS = ("run", "trace", "debug", "syscalls")


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter with the terminal's width found without importing shutil (argparse
    builds a formatter for every add_argument: 3 ms of every start)."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        if width is None:
            try:
                width = int(os.environ.get("COLUMNS", "0")) or os.get_terminal_size(2).columns
            except (OSError, ValueError):
                width = 80
            width -= 2
        super().__init__(prog, indent_increment, max_help_position, width)


class _RawFormatter(_Formatter, argparse.RawDescriptionHelpFormatter):
    pass


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line; with `only`, just that command's subparser (building all of them is
    ~8 ms of every start, and `goemu run` needs one)."""
    p = argparse.ArgumentParser(prog="goemu", formatter_class=_Formatter, description="Run real Go linux/amd64 binaries instruction "
                                "by instruction on Unicorn, with goemu playing the Linux kernel.")
    p.add_argument("--version", action="version", version=f"goemu {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    if only in (None, "run"):
        _add_run_command(sub)
    if only in (None, "trace"):
        _add_trace_command(sub)
    if only in (None, "debug"):
        _add_debug_command(sub)
    if only in (None, "syscalls"):
        sc = sub.add_parser("syscalls", formatter_class=_Formatter, help="list the implemented syscalls and their support level")
        sc.add_argument("--json", action="store_true")
    return p


def _add_run_command(sub) -> None:
    run = sub.add_parser("run", formatter_class=_Formatter, help="run a static linux/amd64 Go binary")
    run.add_argument("-g", dest="gdb", metavar="PORT|PATH",
                     help="gdbserver mode: stop before the first instruction and wait for gdb's "
                          "remote protocol on 127.0.0.1:PORT (or a Unix socket PATH): "
                          "target remote :PORT. docs/gdb.md")
    _add_run_options(run)


def _add_trace_command(sub) -> None:
    tr = sub.add_parser("trace", formatter_class=_Formatter, help="run a binary and record an event per entry of chosen functions",
                        description="Run BINARY (its stdout/stderr unchanged) and record one event per "
                                    "entry of each function matching --sym, with the runtime's M, P and G.")
    tr.add_argument("--sym", action="append", required=True, metavar="PATTERN",
                    help="function name or glob (runtime.schedule, 'runtime.*park*'); repeatable")
    tr.add_argument("-o", dest="output", metavar="FILE", help="write events here (default: stderr)")
    tr.add_argument("--format", choices=["text", "jsonl"], default="text")
    tr.add_argument("--ret", action="store_true", help="also record returns, with their duration")
    tr.add_argument("--stack", type=int, default=0, metavar="N", help="N Go frames per event")
    tr.add_argument("--step", type=int, default=0, metavar="N",
                    help="after each entry, single-step N instructions (disassembled, changed registers)")
    tr.add_argument("--sched", action="store_true", help="scheduler state (schedt, the Ps) per event")
    tr.add_argument("--chrome", metavar="FILE", help="also write Chrome trace-event JSON (opens in Perfetto)")
    tr.add_argument("--timeline", metavar="FILE", help="also draw the trace: FILE.svg, or FILE.html "
                    "(the same picture with zoom); goroutine lanes, M tracks, run queues")
    tr.add_argument("--args", dest="show_args", action="store_true", help="arguments at entries (and results with --ret)")
    tr.add_argument("--from", dest="t_from", metavar="WHEN", help="timeline window start: ms on the "
                    "trace's clock, or a function name (its first event)")
    tr.add_argument("--to", dest="t_to", metavar="WHEN", help="timeline window end: ms, +ms after "
                    "--from, or a function name (its first event after --from)")
    _add_run_options(tr)


def _add_debug_command(sub) -> None:
    from .debughelp import HELP as debug_doc
    db = sub.add_parser("debug", help="step through a binary: breakpoints, bt, threads, goroutines, sched",
                        description=debug_doc, formatter_class=_RawFormatter)
    db.add_argument("-x", dest="script", metavar="FILE", help="read commands from FILE (default: stdin)")
    _add_run_options(db)


class _Exit(Exception):
    def __init__(self, status: int):
        self.status = status


def _kernel(args, exact: bool = False):
    """Build the emulated process for `args`; raise _Exit with the status for bad input."""
    from .ucload import load_unicorn
    load_unicorn()                 # before anything imports it the slow way
    from .hostlimits import own_limit_problem, take_guest_limits
    from .kernel import DEFAULT_SLICE, DEFAULT_TIMESLICE_MS, Kernel, Options
    from .loader import BadExecutable, ExecFailed
    if os.environ.get("GOEMU_BECOME"):
        # a --follow-exec child started for a guest child that set its credentials: load
        # everything first (the new user may not read the interpreter's files), then become it
        import json  # noqa: F401
        import resource  # noqa: F401

        from . import syscalls  # noqa: F401
        from .cpu import make_uc
        from .memory import invalid_addr_offset
        from .slicer import counter_offset, no_exit_request_offset
        from .syscalls.process import become_from_env
        make_uc()                      # Unicorn loads its x86 support on first use
        invalid_addr_offset(), no_exit_request_offset(), counter_offset()
        become_from_env()
    from .signals import host_ignored
    sandbox = _sandbox(args)
    path = args.binary if args.exe_fd is None else f"/proc/self/fd/{args.exe_fd}"
    try:
        os.stat(path)
    except OSError as e:
        # as a shell reports execve's error: ENOENT exits 127, anything else (ENOTDIR, ELOOP,
        # ENAMETOOLONG, EACCES on a directory) 126
        print(f"goemu: {path}: {e.strerror or e}", file=sys.stderr)
        raise _Exit(EXIT_NOT_FOUND if e.errno == errno.ENOENT else EXIT_CANNOT_RUN) from None
    except ValueError:      # an embedded NUL cannot reach execve
        print(f"goemu: {path}: No such file or directory", file=sys.stderr)
        raise _Exit(EXIT_NOT_FOUND) from None
    host_ignored()          # the parent's SIG_IGN dispositions, before goemu installs handlers
    opts = Options(strace=args.strace, verbose=args.verbose, deterministic=args.deterministic,
                   slice=args.slice or DEFAULT_SLICE, cpus=args.cpus,
                   timeslice_ms=args.timeslice or DEFAULT_TIMESLICE_MS, exact=exact,
                   follow_exec=args.follow_exec, exit_by_signal=True,
                   rlimits=take_guest_limits(), sandbox=sandbox)
    problem = own_limit_problem()
    if problem:
        print(f"goemu: {problem}", file=sys.stderr)
        raise _Exit(EXIT_CANNOT_RUN)
    argv0 = args.argv0 or args.binary
    if sandbox is not None:
        if args.exe_fd is not None:
            sandbox.exe = os.fsencode(args.binary)
        else:
            sandbox.exe = sandbox.guest_of_host(os.fsencode(os.path.realpath(path)))
        # the guest knows its binary by its path inside, or by its name when it lies outside
        opts.exe_name = os.fsdecode(sandbox.exe or os.fsencode(os.path.basename(path)))
        argv0 = args.argv0 or opts.exe_name
    argv = [argv0] + list(args.args)
    try:
        k = Kernel(path, argv, _env(args), opts)
        if sandbox is not None:
            _sandbox_start(k, sandbox, args)
    except BadExecutable as e:
        print(f"goemu: {path}: {e}", file=sys.stderr)
        raise _Exit(EXIT_CANNOT_RUN) from None
    except ExecFailed as e:
        print(f"goemu: {path}: {e}; Linux kills the process with {signal.Signals(e.signal).name}",
              file=sys.stderr)
        die_of_signal(e.signal)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    return k


def _sandbox(args):
    """The Sandbox of --root (None without); _Exit(125) when it cannot be set up."""
    if not args.root:
        given = [o for o, v in (("--bind", args.bind), ("--net", args.net), ("--no-net", args.no_net),
                                ("--no-exec", args.no_exec), ("--keep-env", args.keep_env)) if v]
        if given:
            print(f"goemu: {given[0]} needs --root", file=sys.stderr)
            raise _Exit(2)
        return None
    from .sandbox import EXEC_GOEMU, EXEC_NONE, NET_HOST, NET_NONE, Sandbox, SandboxError
    net = NET_NONE if args.no_net else args.net
    if args.no_net and args.net not in (None, NET_NONE):
        print(f"goemu: --no-net contradicts --net={args.net}", file=sys.stderr)
        raise _Exit(2)
    try:
        return Sandbox.create(args.root, args.bind or [], net or NET_HOST,
                              EXEC_NONE if args.no_exec else EXEC_GOEMU)
    except SandboxError as e:
        print(f"goemu: {e}", file=sys.stderr)
        raise _Exit(EXIT_SANDBOX) from None


def _sandbox_start(k, sandbox, args) -> None:
    """The guest's first directory; the binary's fd of a sandboxed exec is closed once loaded."""
    if args.exe_fd is not None:
        try:
            os.close(args.exe_fd)
        except OSError:
            pass
    if args.guest_cwd is not None:
        sandbox.set_cwd(k, os.fsencode(args.guest_cwd))
        return
    try:
        here = os.fsencode(os.path.realpath(os.getcwd()))
    except OSError:
        here = b""
    sandbox.start_in(k, here)


def die_of_signal(sig: int) -> None:
    """End goemu by signal `sig`, as the guest ended natively (a shell's $? is 128+N, waitpid
    sees WIFSIGNALED), without a core file of goemu. If the signal does not end goemu, the
    status is 128+N."""
    import resource
    import time
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    except (OSError, ValueError):
        pass
    try:
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        time.sleep(1)        # delivered at once to this thread when unblocked
    except (OSError, ValueError):
        pass
    raise _Exit(128 + sig)


def _release_own_stdio() -> None:
    """The guest's stdin/stdout are goemu's fds 0 and 1, dup'ed (goemu.fdtable). goemu itself
    neither reads nor writes them while running a guest, so it lets go of its own copies: when
    the guest closes its stdout, a parent waiting for EOF on that pipe must see it, as natively
    (Go's os TestKillStartProcess waits for exactly that). stderr stays: goemu reports on it."""
    try:
        null = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for n in (0, 1):
        try:
            os.dup2(null, n, inheritable=False)
        except OSError:
            pass
    os.close(null)


def cmd_run(args) -> int:
    if args.gdb:
        from .gdb.stub import serve
        k = _kernel(args, exact=True)
        syms, layouts = _symbols(args.binary, verbose_missing=False)
        remake = (lambda: _kernel(args, exact=True)) if args.deterministic else None
        return serve(k, args.gdb, syms, layouts, remake)
    k = _kernel(args)
    _release_own_stdio()
    k.ignore_host_signals_after = True
    status = k.run()
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the guest is gone: its status stands
    sys.stdout.flush()
    if k.killed_by:
        # die of the guest's signal, so the parent's wait4 (a shell, a guest under
        # --follow-exec) sees a signal death
        die_of_signal(k.killed_by)
    return status


def _symbols(path: str, verbose_missing: bool = True):
    """Symbols and runtime layouts of the binary, with a note for each thing it lacks."""
    from .gotypes import Layouts
    from .symbols import Symbols
    syms = Symbols(path)
    layouts = Layouts(syms)
    if verbose_missing:
        for what in syms.missing():
            print(f"goemu: note: {what}", file=sys.stderr)
        for what in layouts.notes:
            if "built-in table" in what or "without an address" in what or "no runtime" in what \
                    or "unreadable" in what:
                print(f"goemu: note: {what}", file=sys.stderr)
    return syms, layouts


def cmd_trace(args) -> int:
    from .trace import TraceOptions, Tracer, run_traced
    # Instruction-count slices only where they are needed: --deterministic (reproducible
    # interleavings, virtual time) and --step (single steps right after an entry). Otherwise the
    # trace runs on the same time slices as `goemu run`: untraced code at run's speed, a Python
    # call per traced event (count slices cost ~25x on CPU-bound code); events then carry the
    # guest clock instead of icount.
    k = _kernel(args, exact=bool(args.deterministic or args.step))
    syms, layouts = _symbols(args.binary)
    out = open(args.output, "w") if args.output else sys.stderr
    opts = TraceOptions(args.sym, args.format, out, args.ret, args.stack, args.step, args.sched, args.chrome,
                        args.timeline, args.show_args, (args.t_from, args.t_to))
    tracer = Tracer(k, syms, layouts, opts)
    if not tracer.targets:
        print(f"goemu: no function matches {' or '.join(args.sym)}", file=sys.stderr)
        return 2
    if args.sched and "runtime.sched" not in layouts.globals:
        print("goemu: note: --sched needs runtime.sched and runtime.allp, which this binary does "
              "not name (stripped?): scheduler state is left out", file=sys.stderr)
        opts.sched = False
    try:
        status = run_traced(k, tracer)
    finally:
        if args.output:
            out.close()
    sys.stdout.flush()
    if k.killed_by:
        die_of_signal(k.killed_by)      # as `goemu run`: the guest's signal death is goemu's
    return status


def cmd_debug(args) -> int:
    from .debug import run_debugger
    k = _kernel(args, exact=True)
    syms, layouts = _symbols(args.binary)
    script = open(args.script) if args.script else None
    try:
        status = run_debugger(k, syms, layouts, script)
    finally:
        if script is not None:
            script.close()
    if k.killed_by:
        die_of_signal(k.killed_by)      # as `goemu run`: the guest's signal death is goemu's
    return status


def cmd_syscalls(args) -> int:
    import json

    from .syscalls import HANDLERS
    rows = [{"nr": h.nr, "name": h.name, "level": h.level, "note": h.note}
            for h in sorted(HANDLERS.values(), key=lambda h: h.nr)]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['nr']:4d}  {r['name']:<22} {r['level']:<8} {r['note']}".rstrip())
        print(f"{len(rows)} syscalls; any other number returns ENOSYS (noted under -v/--strace)")
    return 0


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = build_parser(words[0] if words and words[0] in COMMANDS else None).parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "trace":
            return cmd_trace(args)
        if args.command == "debug":
            return cmd_debug(args)
        if args.command == "syscalls":
            return cmd_syscalls(args)
    except _Exit as e:
        return e.status
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except BrokenPipeError:
        return 128 + signal.SIGPIPE
    except Exception as e:  # an emulator bug: one line, unless GOEMU_DEBUG asks for the traceback
        if os.environ.get("GOEMU_DEBUG"):
            raise
        print(f"goemu: internal error: {type(e).__name__}: {e} (set GOEMU_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL
    return 2


if __name__ == "__main__":
    sys.exit(main())
