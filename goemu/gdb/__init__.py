"""A gdb remote-protocol stub for goemu (``goemu run -g PORT``): packets.py frames the protocol,
target.py describes the x86-64 registers, stub.py answers gdb's commands on the shared engine
(goemu/engine.py), reverse.py goes back in time under --deterministic. docs/gdb.md has more."""
