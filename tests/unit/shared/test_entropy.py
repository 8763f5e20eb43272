"""Trace ids and signature nonces drawn from the system's randomness many at a time
(shared/entropy.py): the same texts as before, each handed out once, a forked child's its
own."""

from __future__ import annotations

import base64
import re

from shared import entropy
from tests.forking import made_in_a_forked_child


def test_trace_ids_are_32_hex_digits_as_urandom_hex_each_one_once() -> None:
    made = [entropy.trace_id() for _ in range(3 * 256 + 7)]  # across refills
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in made)
    assert len(set(made)) == len(made)
    # every bit of the 16 bytes random: each hex place takes every digit somewhere
    for place in range(32):
        assert len({t[place] for t in made}) == 16


def test_nonces_are_secrets_token_urlsafe_16_texts_each_one_once() -> None:
    made = [entropy.nonce() for _ in range(3 * 256 + 7)]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", n) for n in made)
    assert len(set(made)) == len(made)
    # 16 bytes each, as token_urlsafe(16) gives: 22 characters decode back to 16 bytes
    assert {len(base64.urlsafe_b64decode(n + "==")) for n in made} == {16}


def test_a_forked_process_draws_trace_ids_and_nonces_of_its_own() -> None:
    """Texts are made many at a time; a child forked with some of them unused must not hand
    out the ones its parent hands out next."""
    entropy.trace_id(), entropy.nonce()  # the parent now holds texts not used yet
    childs = made_in_a_forked_child(
        lambda: [entropy.trace_id() for _ in range(20)] + [entropy.nonce() for _ in range(20)]
    )
    assert len(childs) == 40
    assert not childs & {entropy.trace_id() for _ in range(20)}
    assert not childs & {entropy.nonce() for _ in range(20)}
