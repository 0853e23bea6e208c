"""Page tokens: opaque, round-tripping their cursor, and refused with a field violation when not ours."""

from __future__ import annotations

import pytest

from libs.errors import InvalidArgument
from libs.pb import after_id, decode_page_token, encode_page_token, next_page, page_size


def test_a_token_carries_its_cursor_back() -> None:
    """What encode_page_token wrapped comes back unchanged; an empty token is the first page."""
    assert decode_page_token(encode_page_token(["pay_01J", 7])) == ["pay_01J", 7]
    assert decode_page_token("") is None


def test_after_id_reads_a_one_id_cursor() -> None:
    """A "newest first by id" listing continues below the id in its token."""
    assert after_id(encode_page_token(["btr_01JABC"])) == "btr_01JABC"
    assert after_id("") is None


@pytest.mark.parametrize(
    "token",
    [
        "not base64 at all!",
        encode_page_token([42]),  # a cursor, but not an id
        encode_page_token(["a", "b"]),
        encode_page_token([""]),
    ],
)
def test_after_id_refuses_other_tokens(token: str) -> None:
    """Anything else is INVALID_ARGUMENT naming page_token."""
    with pytest.raises(InvalidArgument) as refused:
        after_id(token)
    assert [v.field for v in refused.value.violations] == ["page_token"]


def test_page_size_defaults_clamps_and_refuses_negatives() -> None:
    """0 is the default size, large sizes are clamped, a negative one is refused."""
    assert page_size(0) > 0
    assert page_size(10_000, maximum=500) == 500
    with pytest.raises(InvalidArgument):
        page_size(-1)


def test_next_page_splits_the_extra_row_into_a_token_after_the_last_item() -> None:
    """Read with size + 1: the page is the first size items and its token continues after
    the last of them; without the extra row the page is all there is and the token is "".
    """
    page, token = next_page(["c", "b", "a"], 2, str.upper)
    assert (list(page), decode_page_token(token)) == (["c", "b"], ["B"])
    assert next_page(["c", "b"], 2, str.upper) == (["c", "b"], "")
    assert next_page([], 2, str.upper) == ([], "")
