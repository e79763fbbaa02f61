"""Writing SDTM tables (adapter.tables.write_table): the cells joined in C when none needs quoting
give the same bytes as the csv module, whatever the cells hold."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from adapter.tables import WRITE_CHUNK, _plain_lines, write_table
from mappings.sdtm import Table

PIECES = ["a", "b", ",", '"', "\n", "\r", " ", "", "é", "\t", "\u2028", "x,y"]


def csv_module(columns: list[str], lines: Sequence[tuple[str, ...]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    writer.writerows(lines)
    return out.getvalue()


def test_plain_join_is_the_csv_modules_text_or_declines() -> None:
    chance = random.Random(13)
    joined = 0
    for _ in range(5000):
        width, rows = chance.randint(1, 4), chance.randint(0, 4)

        def cell(most: int) -> str:
            return "".join(chance.choice(PIECES) for _ in range(chance.randint(0, most)))

        columns = [cell(2) for _ in range(width)]
        lines = [tuple(cell(3) for _ in range(width)) for _ in range(rows)]
        text = _plain_lines(width, [tuple(columns), *lines])
        if text is not None:
            joined += 1
            assert text == csv_module(columns, lines), (columns, lines)
    assert joined > 100  # the fast path was taken often enough to be tested


@pytest.mark.parametrize(
    "cells",
    [("a,b", "c"), ('say "hi"', "c"), ("two\nlines", "c"), ("cr\r", "c"), ("", "")],
)
def test_cells_that_need_quoting_are_written_by_the_csv_module(
    tmp_path: Path, cells: tuple[str, str]
) -> None:
    table = Table("XX", ["A", "B"], [{"A": cells[0], "B": cells[1]}, {"A": "plain", "B": "x"}])
    write_table(table, tmp_path / "xx.csv")
    expected = csv_module(["A", "B"], [cells, ("plain", "x")])
    assert (tmp_path / "xx.csv").read_bytes() == expected.encode()


def test_a_single_column_of_empty_cells_is_quoted_as_the_csv_module_does(tmp_path: Path) -> None:
    table = Table("XX", ["A"], [{"A": ""}, {"A": "v"}])
    write_table(table, tmp_path / "xx.csv")
    assert (tmp_path / "xx.csv").read_bytes() == b'A\n""\nv\n'


def test_a_row_missing_a_cell_is_written_with_it_empty(tmp_path: Path) -> None:
    table = Table("XX", ["A", "B", "C"], [{"A": "1", "C": "3"}, {"A": "4", "B": "5", "C": "6"}])
    write_table(table, tmp_path / "xx.csv")
    assert (tmp_path / "xx.csv").read_bytes() == b"A,B,C\n1,,3\n4,5,6\n"


def test_a_table_longer_than_a_chunk_mixes_joined_and_quoted_chunks(tmp_path: Path) -> None:
    rows = [{"A": str(n), "B": "x"} for n in range(WRITE_CHUNK * 2 + 5)]
    rows[WRITE_CHUNK + 3]["B"] = 'needs "quotes", here'
    write_table(Table("XX", ["A", "B"], rows), tmp_path / "xx.csv")
    lines = [(row["A"], row["B"]) for row in rows]
    assert (tmp_path / "xx.csv").read_bytes() == csv_module(["A", "B"], lines).encode()
