"""ULIDs: the Crockford base32 encoding of a 48-bit time and 80 random bits."""

from __future__ import annotations

import random
import time

from libs.ids import encode_ulid, new_ulid

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def by_digits(millis: int, randomness: int) -> str:
    """The reference: 26 base-32 digits of the 130-bit number, most significant first."""
    value = (millis << 80) | randomness
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def test_known_values() -> None:
    assert encode_ulid(0, 0) == "0" * 26
    assert encode_ulid(2**48 - 1, 2**80 - 1) == "7" + "Z" * 25
    # The spec's example time, 1469918176385 ms: its first ten characters.
    assert encode_ulid(1469918176385, 0)[:10] == "01ARYZ6S41"


def test_matches_the_digit_by_digit_encoding() -> None:
    rng = random.Random(7)
    for _ in range(2_000):
        millis, randomness = rng.getrandbits(48), rng.getrandbits(80)
        assert encode_ulid(millis, randomness) == by_digits(millis, randomness)


def test_new_ids_are_prefixed_unique_and_ordered_by_time() -> None:
    first = new_ulid("rwd_")
    time.sleep(0.002)
    later = [new_ulid("rwd_") for _ in range(1_000)]
    assert first.startswith("rwd_")
    assert len(first) == 30
    assert len(set(later)) == len(later)
    assert all(first < other for other in later)
