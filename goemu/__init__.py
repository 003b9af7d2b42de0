"""goemu: run real Go linux/amd64 binaries on Unicorn, with goemu playing Linux."""
__version__ = "0.1.0"
