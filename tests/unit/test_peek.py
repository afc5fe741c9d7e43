"""`peek`'s pure selection logic (streams.peek): the options, the offset ranges from the watermarks,
the records kept and their order. Reading Kafka is tests/integration/test_peek.py."""

from __future__ import annotations

import pytest

from streams.errors import ConfigError
from streams.peek import Fetched, Selection, chosen, offset_ranges

TOPIC = "orders"
# partition -> (low, high): 0 has offsets 0-9, 1 has 5-7 (older ones deleted), 2 is empty
MARKS = {0: (0, 10), 1: (5, 8), 2: (3, 3)}


@pytest.mark.parametrize(
    "options, expected",
    [
        ({}, Selection("last", 10)),
        ({"last": 3}, Selection("last", 3)),
        ({"first": 4}, Selection("first", 4)),
        ({"first": 4, "partition": 1}, Selection("first", 4, 1)),
        ({"partition": 2}, Selection("last", 10, 2)),
        ({"partition": 0, "offset_from": 3}, Selection("range", 0, 0, 3, None)),
        ({"partition": 0, "offset_from": 3, "offset_to": 3}, Selection("range", 0, 0, 3, 3)),
    ],
)
def test_options_to_selection(options: dict[str, int], expected: Selection) -> None:
    assert Selection.from_options(**options) == expected


@pytest.mark.parametrize(
    "options, message",
    [
        ({"last": 2, "first": 2}, "give --last or --first, not both"),
        ({"last": 0}, "--last must be >= 1, not 0"),
        ({"first": -1}, "--first must be >= 1, not -1"),
        ({"partition": -1}, "--partition must be >= 0, not -1"),
        ({"offset_to": 4}, "--offset-to needs --offset-from"),
        ({"offset_from": 4}, "--offset-from needs --partition"),
        ({"partition": 0, "offset_from": -2}, "--offset-from must be >= 0, not -2"),
        ({"partition": 0, "offset_from": 5, "offset_to": 4}, "--offset-to 4 is before --offset-from 5"),
        ({"partition": 0, "offset_from": 5, "last": 4}, "give it without --last or --first"),
        ({"partition": 0, "offset_from": 5, "first": 4}, "give it without --last or --first"),
    ],
)
def test_options_that_do_not_fit(options: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Selection.from_options(**options)


@pytest.mark.parametrize(
    "selection, ranges",
    [
        # each partition's last/first N by offset; an empty partition has nothing to read
        (Selection("last", 2), {0: (8, 10), 1: (6, 8)}),
        (Selection("last", 5), {0: (5, 10), 1: (5, 8)}),
        (Selection("first", 2), {0: (0, 2), 1: (5, 7)}),
        (Selection("first", 50), {0: (0, 10), 1: (5, 8)}),
        (Selection("last", 3, 1), {1: (5, 8)}),
        (Selection("first", 1, 0), {0: (0, 1)}),
        (Selection("last", 3, 2), {}),
        # a range: offset_to inclusive, default the newest record
        (Selection("range", 0, 0, 4, None), {0: (4, 10)}),
        (Selection("range", 0, 0, 4, 6), {0: (4, 7)}),
        (Selection("range", 0, 1, 5, 5), {1: (5, 6)}),
        (Selection("range", 0, 0, 9, 9), {0: (9, 10)}),
    ],
)
def test_offset_ranges(selection: Selection, ranges: dict[int, tuple[int, int]]) -> None:
    assert offset_ranges(TOPIC, selection, MARKS) == ranges


@pytest.mark.parametrize(
    "selection, message",
    [
        (Selection("last", 3, 3), "--partition 3: topic 'orders' has partitions 0-2"),
        (Selection("range", 0, 7, 0, None), "--partition 7: topic 'orders' has partitions 0-2"),
        (Selection("range", 0, 0, 10, None), "--offset-from 10: partition 0 of 'orders' holds offsets 0-9"),
        (Selection("range", 0, 1, 4, None), "--offset-from 4: partition 1 of 'orders' holds offsets 5-7"),
        (Selection("range", 0, 1, 5, 8), "--offset-to 8: partition 1 of 'orders' holds offsets 5-7"),
        (Selection("range", 0, 2, 3, None), "--offset-from 3: partition 2 of 'orders' holds no records \\(next offset 3\\)"),
    ],
)
def test_selections_that_do_not_fit_the_topic(selection: Selection, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        offset_ranges(TOPIC, selection, MARKS)


def test_a_topic_without_partitions_names_none() -> None:
    with pytest.raises(ConfigError, match="has partitions none"):
        offset_ranges(TOPIC, Selection("last", 1, 0), {})


def _rec(partition: int, offset: int, ts: int) -> Fetched:
    return Fetched(partition, offset, ts, b"")


# per-partition reads of the last/first 3: partition 1's records are the newer ones, one tie at 300
READ = [_rec(0, 7, 100), _rec(0, 8, 300), _rec(0, 9, 310), _rec(1, 5, 200), _rec(1, 6, 300), _rec(1, 7, 400)]


def _at(records: list[Fetched]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in records]


@pytest.mark.parametrize(
    "selection, expected",
    [
        # the N newest across partitions by timestamp (ties: partition, then offset), oldest first
        (Selection("last", 3), [(1, 6), (0, 9), (1, 7)]),
        (Selection("last", 4), [(0, 8), (1, 6), (0, 9), (1, 7)]),
        (Selection("last", 10), [(0, 7), (1, 5), (0, 8), (1, 6), (0, 9), (1, 7)]),
        # the N oldest
        (Selection("first", 2), [(0, 7), (1, 5)]),
        (Selection("first", 3), [(0, 7), (1, 5), (0, 8)]),
    ],
)
def test_chosen_merges_partitions_by_timestamp(selection: Selection, expected: list[tuple[int, int]]) -> None:
    assert _at(chosen(selection, reversed(READ))) == expected


def test_a_range_is_reported_in_offset_order_whatever_the_timestamps() -> None:
    read = [_rec(0, 4, 900), _rec(0, 5, 100), _rec(0, 6, -1)]  # -1: a record without a timestamp
    assert _at(chosen(Selection("range", 0, 0, 4, None), read)) == [(0, 4), (0, 5), (0, 6)]
