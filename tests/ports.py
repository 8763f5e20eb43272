"""Free TCP ports for the processes a test or a benchmark starts."""

from __future__ import annotations

import socket

_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now that this process has not handed out before.

    The kernel may hand one free port to two ``bind(("127.0.0.1", 0))`` made in turn, the
    first socket closed: a clean-clone CI run gave the integration suite's gateway and
    knowledge the same port, and knowledge could not start. The ports a run asks for are
    kept here, so the processes of one system never share one."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
