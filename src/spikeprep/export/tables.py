"""Declared table columns and Parquet tables that carry them.

A :class:`Column` says a column's name, dtype, unit of measure and meaning, once; the
Parquet writer stores the unit and meaning as field metadata (``unit``,
``description``), and the README's column tables are generated from the same
declarations (:func:`markdown_table`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

__all__ = ["Column", "write_table", "read_table", "table_rows", "column_units", "markdown_table"]


@dataclass(frozen=True)
class Column:
    """One declared column.

    Attributes
    ----------
    name : str
    dtype : str
        As pandas/Arrow shows it (``int64``, ``float64``, ``bool``, ``string``).
    unit : str
        Unit of measure (``s``, ``Hz``, ``µm``, ``ms``, ``cm/s``, ``V``, ``%``), or
        ``""`` for a dimensionless value, an id or a label.
    meaning : str
        One line.
    """

    name: str
    dtype: str
    unit: str
    meaning: str


def write_table(df: pd.DataFrame, path: Path, columns: Sequence[Column] = (),
                metadata: dict[str, str] | None = None) -> int:
    """Write ``df`` (its index is not kept) as zstd Parquet with each declared column's
    unit and meaning as field metadata, and ``metadata`` added to the file's; return the
    number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    declared = {c.name: c for c in columns}
    if declared or metadata:
        schema = pa.schema([
            f.with_metadata({"unit": declared[f.name].unit, "description": declared[f.name].meaning})
            if f.name in declared else f
            for f in table.schema
        ], metadata={**(table.schema.metadata or {}), **{k.encode(): v.encode() for k, v in (metadata or {}).items()}})
        table = table.cast(schema)
    # Floats (times, positions, metrics) are nearly all distinct: a dictionary of them
    # only costs a hash per value before Arrow falls back to plain pages.
    keyed = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    pq.write_table(table, path, compression="zstd", use_dictionary=keyed)
    return table.num_rows


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def table_rows(path: Path) -> int:
    """Rows of a Parquet file, from its footer."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def column_units(path: Path) -> dict[str, str]:
    """``{column: unit}`` of the columns of a Parquet file that declare one."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    return {f.name: f.metadata[b"unit"].decode() for f in schema if f.metadata and b"unit" in f.metadata}


def markdown_table(columns: Sequence[Column]) -> str:
    """The declared columns as a Markdown table (name, dtype, unit, meaning)."""
    lines = ["| column | dtype | unit | meaning |", "| --- | --- | --- | --- |"]
    lines += [f"| `{c.name}` | {c.dtype} | {c.unit or '–'} | {c.meaning} |" for c in columns]
    return "\n".join(lines)
