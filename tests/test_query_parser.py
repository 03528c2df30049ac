"""The query parser: dates and places out of the words (a table), and what stays words."""
from __future__ import annotations

import datetime as dt

import pytest

from retrieval.query.filters import Filters, folder_like, parse_day
from retrieval.query.parser import parse_query
from retrieval.query.understand import understand

TODAY = dt.date(2026, 12, 6)
PLACES = {"norway", "oslo", "no", "new york", "paris", "france", "newfoundland", "labrador", "cardigan",
          "chihuahua"}

# query -> (words searched, since, until (exclusive), months, place)
TABLE = [
    ("beach 2023", "beach", "2023-01-01", "2024-01-01", None, None),
    ("dogs in July 2019", "dogs", "2019-07-01", "2019-08-01", None, None),
    ("july 2019 dogs", "dogs", "2019-07-01", "2019-08-01", None, None),
    ("snow in Norway", "snow", None, None, None, "Norway"),
    ("sunset last summer", "sunset", "2026-06-01", "2026-09-01", None, None),
    ("flowers in spring 2021", "flowers", "2021-03-01", "2021-06-01", None, None),
    ("skiing in winter 2021", "skiing", "2021-12-01", "2022-03-01", None, None),
    ("skiing last winter", "skiing", "2025-12-01", "2026-03-01", None, None),
    ("leaves last fall", "leaves", "2026-09-01", "2026-12-01", None, None),  # ended 2026-11-30
    ("a birthday last year", "a birthday", "2025-01-01", "2026-01-01", None, None),
    ("picnic this summer", "picnic", "2026-06-01", "2026-09-01", None, None),
    ("kids in May", "kids", None, None, (5,), None),
    ("snow in winter", "snow", None, None, (12, 1, 2), None),
    ("march 2019 protest", "protest", "2019-03-01", "2019-04-01", None, None),
    ("cats from 2019 to 2021", "cats", "2019-01-01", "2022-01-01", None, None),
    ("boat in New York at night", "boat at night", None, None, None, "New York"),
    ("a cafe in Paris in 2022", "a cafe", "2022-01-01", "2023-01-01", None, "Paris"),
    ("a dog near Oslo", "a dog", None, None, None, "Oslo"),
    # words that stay words
    ("dogs may run", "dogs may run", None, None, None, None),
    ("a march in the street", "a march in the street", None, None, None, None),
    ("a Chihuahua in a bag", "a Chihuahua in a bag", None, None, None, None),
    ("a dog from Newfoundland", "a dog from Newfoundland", None, None, None, None),
    ("a dog in Labrador", "a dog in Labrador", None, None, None, None),
    ("a Cardigan at the beach", "a Cardigan at the beach", None, None, None, None),
    ("a cat in the snow", "a cat in the snow", None, None, None, None),
    ("Paris hilton", "Paris hilton", None, None, None, None),  # a place only after in/at/from/near
    ("a snowy day in Tokyo", "a snowy day in Tokyo", None, None, None, None),  # no photo taken there
    ("2023", "2023", None, None, None, None),  # nothing left to search by meaning: the words as typed
    ("route 66 in 1850 style", "route 66 style", "1850-01-01", "1851-01-01", None, None),
]


@pytest.mark.parametrize("query,text,since,until,months,place", TABLE, ids=[t[0] for t in TABLE])
def test_parser_table(query, text, since, until, months, place):
    p = parse_query(query, PLACES, today=TODAY)
    assert (p.text, p.filters.since, p.filters.until, p.filters.months, p.filters.place) == \
        (text, since, until, months, place)


def test_understood_line_literal_and_given_filters_win():
    u = understand("beach 2023", places=lambda: PLACES)
    assert u.line() == 'searched "beach" from 2023-01-01 to 2023-12-31' and u.parsed
    assert understand("beach 2023", literal=True).text == "beach 2023"
    u = understand("beach 2023", Filters(since="2020-01-01"), places=lambda: PLACES)
    assert (u.text, u.filters.since, u.filters.until) == ("beach", "2020-01-01", "2024-01-01")
    called = []
    understand("a red car 2020", places=lambda: called.append(1) or PLACES)
    assert called == []  # no in/at/from/near: the index's place names are not read


def test_dates_and_folders_of_the_options():
    assert parse_day("2023") == "2023-01-01" and parse_day("2023-07", end=True) == "2023-08-01"
    assert parse_day("2023-12", end=True) == "2024-01-01" and parse_day("2024-02-29") == "2024-02-29"
    for bad in ("2023-02-30", "yesterday", "23"):
        with pytest.raises(ValueError, match="not a date"):
            parse_day(bad)
    assert folder_like("/photos/2023_trip") == "/photos/2023\\_trip/%"
    assert folder_like("holidays") == "%/holidays/%" and folder_like("*/2023-*") == "%/2023-%/%"
    assert Filters.from_options(after="2023", before="2023-07").describe() == "from 2023-01-01 to 2023-06-30"
