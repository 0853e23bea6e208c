"""Write assignment_vectors.json: the shared test vectors of experiment assignment and holdout.

Run ``.venv/bin/python -m services.marketing.testdata.generate_assignment_vectors`` after a
deliberate change of the hash (which reshuffles every user: it needs a new contract). The
output is deterministic; a test checks the committed file is exactly what this writes.
Besides ordinary user ids, it hunts for ids that land on either side of each boundary
between variants, where an off-by-one in another language's port would show.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.marketing.domain.experiments import (
    BUCKETS,
    Experiment,
    Variant,
    assign,
    assignment_bucket,
    bucket_ranges,
    holdout_bucket,
    in_holdout,
)

PATH = Path(__file__).with_name("assignment_vectors.json")

_EXPERIMENTS = [
    Experiment("exp_checkout_button", "s1", (Variant("control", 1), Variant("treatment", 1)), "control"),
    Experiment("exp_three_way", "2026-05", (Variant("a", 1), Variant("b", 1), Variant("c", 1)), "a"),
    Experiment("exp_503020", "salt", (Variant("control", 50), Variant("blue", 30), Variant("green", 20)), "control"),
    Experiment("exp_tiny_arm", "x", (Variant("control", 9999), Variant("canary", 1)), "control"),
    Experiment("exp_1234", "q.3", tuple(Variant(f"v{w}", w) for w in (1, 2, 3, 4)), "v1"),
    Experiment("exp_full_weights", "s", (Variant("control", 5000), Variant("treatment", 5000)), "control"),
    Experiment("exp_checkout_button", "s2", (Variant("control", 7), Variant("treatment", 3)), "control"),
    Experiment(
        "cmp_points_size",
        "01J8Z3Q4",
        (Variant("points_100", 2), Variant("points_300", 1), Variant("points_500", 1)),
        "points_100",
    ),
]
_USERS = ["usr_01J8Z3Q4R5S6T7V8W9X0Y1Z2A3", "u1", "ユーザー_42", "usr:with:colons"]
_BOUNDARY_EXPERIMENTS = ("exp_three_way", "exp_503020", "exp_tiny_arm", "exp_1234")
_HOLDOUT_SALT = "global-2026"
_HOLDOUT_BPS = 500


def _hash64(key: str) -> str:
    """The first 8 bytes of SHA-256 as hex: shows other implementations where they differ."""
    return hashlib.sha256(key.encode("utf-8")).digest()[:8].hex()


def _find_users(targets: set[int], bucket_of: Callable[[str], int]) -> dict[int, str]:
    """The first ``usr_boundary_{n}`` for each target bucket (a deterministic search)."""
    found: dict[int, str] = {}
    for n in itertools.count():
        user_id = f"usr_boundary_{n}"
        bucket = bucket_of(user_id)
        if bucket in targets and bucket not in found:
            found[bucket] = user_id
            if len(found) == len(targets):
                return found
    raise AssertionError("unreachable")  # pragma: no cover


def _assignment_vector(experiment: Experiment, user_id: str) -> dict[str, Any]:
    """One vector: the inputs, the intermediate hash and bucket, and the variant."""
    return {
        "experiment_id": experiment.experiment_id,
        "salt": experiment.salt,
        "variants": [{"name": v.name, "weight": v.weight} for v in experiment.variants],
        "user_id": user_id,
        "hash64": _hash64(f"assign:{experiment.salt}:{experiment.experiment_id}:{user_id}"),
        "bucket": assignment_bucket(experiment.experiment_id, experiment.salt, user_id),
        "variant": assign(experiment, user_id),
    }


def _boundary_users(experiment: Experiment) -> list[str]:
    """Users in the first and last bucket and on both sides of every inner boundary."""
    ends = [bucket_range.end for bucket_range in bucket_ranges(experiment)[:-1]]
    targets = {0, BUCKETS - 1} | {end - 1 for end in ends} | set(ends)
    found = _find_users(targets, lambda user: assignment_bucket(experiment.experiment_id, experiment.salt, user))
    return [found[bucket] for bucket in sorted(targets)]


def assignment_vectors() -> list[dict[str, Any]]:
    """Every assignment vector: ordinary users for each experiment, then boundary users."""
    vectors = [_assignment_vector(experiment, user) for experiment in _EXPERIMENTS for user in _USERS]
    for experiment in _EXPERIMENTS:
        if experiment.experiment_id in _BOUNDARY_EXPERIMENTS:
            vectors += [_assignment_vector(experiment, user) for user in _boundary_users(experiment)]
    return vectors


def holdout_vectors() -> list[dict[str, Any]]:
    """Holdout vectors: ordinary users, the users either side of the cut, and 0 and 10000 bps."""
    edge = _find_users({_HOLDOUT_BPS - 1, _HOLDOUT_BPS}, lambda user: holdout_bucket(_HOLDOUT_SALT, user))
    cases = [(_HOLDOUT_SALT, _HOLDOUT_BPS, user) for user in [*_USERS, edge[_HOLDOUT_BPS - 1], edge[_HOLDOUT_BPS]]]
    cases += [(_HOLDOUT_SALT, 0, _USERS[0]), (_HOLDOUT_SALT, BUCKETS, _USERS[0]), ("other-salt", 5000, _USERS[0])]
    return [
        {
            "holdout_salt": salt,
            "holdout_bps": bps,
            "user_id": user,
            "hash64": _hash64(f"holdout:{salt}:{user}"),
            "bucket": holdout_bucket(salt, user),
            "in_holdout": in_holdout(user, salt, bps),
        }
        for salt, bps, user in cases
    ]


def render() -> str:
    """The file's text: one vector per line, so a diff shows which vectors changed."""

    def lines(vectors: list[dict[str, Any]]) -> str:
        return ",\n".join("    " + json.dumps(vector, ensure_ascii=False) for vector in vectors)

    return (
        "{\n"
        '  "about": "Shared test vectors of furima experiment assignment; see docs/marketing-experiments.md.",\n'
        '  "assignment_key": "assign:{salt}:{experiment_id}:{user_id}",\n'
        '  "holdout_key": "holdout:{holdout_salt}:{user_id}",\n'
        '  "bucket": "int(first 8 bytes of sha256(utf8(key)), big-endian) mod 10000",\n'
        f'  "assignment": [\n{lines(assignment_vectors())}\n  ],\n'
        f'  "holdout": [\n{lines(holdout_vectors())}\n  ]\n'
        "}\n"
    )


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {PATH}")
