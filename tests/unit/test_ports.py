"""The ports the test systems and benchmarks give their processes."""

from __future__ import annotations

import socket

from tests.ports import free_port


def test_one_run_never_hands_out_a_port_twice() -> None:
    # bind(0) then close, a thousand times over ~28,000 ephemeral ports: the kernel hands
    # some port out again in practically every such run (~18 repeats expected)
    ports = [free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)


def test_a_port_handed_out_can_be_listened_on() -> None:
    port = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
