"""What a forked child makes: for tests that a process's values drawn ahead (random bits,
ids, nonces) are not shared with a child forked while some are unused."""

from __future__ import annotations

import os
from collections.abc import Callable


def made_in_a_forked_child(make: Callable[[], list[str]]) -> set[str]:
    """The texts ``make()`` returns in a child forked from this process now (each text
    one line, so none may hold a newline)."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's lines are counted in the parent
        os.close(read)
        os.write(write, "\n".join(make()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        made = set(pipe.read().split("\n"))
    os.waitpid(child, 0)
    return made
