"""The stimulus table: parameter values as numbers, durations, condition ids.

A session's presentation tables name the same parameter with different types (a
string "0.08" here, a float there; vectors written as "[250.0, 250.0]"). Here every
parameter column gets one type across tables: float when every value is a number,
a list of floats (Arrow ``list<double>``) when any value is a vector (a scalar in such
a column is a one-element list), else a string; "N/A", "None" and "" are missing.
As AllenSDK does, ``color`` is split: RGB triplets move to ``color_triplet``.

``stimulus_condition_id`` numbers the distinct combinations of ``stimulus_name`` and
every parameter (``stimulus_index`` excepted) in order of first presentation, with
missing values equal to each other: AllenSDK's numbering.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = ["BASE_COLUMNS", "NON_PARAMETERS", "DETAILED_PARAMETERS", "parameter_columns", "unify_parameter",
           "split_color", "condition_ids", "conditions_table", "add_conditions", "epochs"]

BASE_COLUMNS = ["stimulus_presentation_id", "start_time", "stop_time", "stimulus_name", "stimulus_block",
                "duration", "stimulus_condition_id"]
NON_PARAMETERS = {"stimulus_index", "is_invalid"}
# AllenSDK hides these from session.stimulus_presentations (they stay in stimulus_conditions).
DETAILED_PARAMETERS = ("colorSpace", "flipHoriz", "flipVert", "depth", "interpolate", "mask", "opacity", "rgbPedestal",
                       "tex", "texRes", "units", "rgb", "signalDots", "noiseDots", "fieldSize", "fieldShape",
                       "fieldPos", "nDots", "dotSize", "dotLife", "color_triplet")
MISSING_STRINGS = {"N/A", "nan", "NaN", "", "None", "null"}
_VECTOR = re.compile(r"^\s*[\[(](.*)[\])]\s*$")


def parameter_columns(table: pd.DataFrame) -> list[str]:
    """The parameter columns of a stimulus table (neither base columns nor bookkeeping)."""
    return [c for c in table.columns if c not in BASE_COLUMNS and c not in NON_PARAMETERS]


def _vector(text: str) -> list[float] | None:
    m = _VECTOR.match(text)
    if not m:
        return None
    try:
        return [float(x) for x in m.group(1).split(",") if x.strip()]
    except ValueError:
        return None


def unify_parameter(values: pd.Series) -> pd.Series:
    """One type for a parameter column (see the module docstring); the index is kept.

    Decided and converted on the column's distinct values (a few dozen among tens of
    thousands of presentations), then spread to the rows: equal values share one list.
    """
    if values.dtype != object and not pd.api.types.is_string_dtype(values.dtype):
        return values.astype(float) if values.dtype.kind in "iub" else values
    codes, distinct = pd.factorize(values.astype(object).to_numpy(), use_na_sentinel=True)  # NaN, None: -1
    unified = _unify_distinct(pd.Series(distinct, dtype=object))
    if unified.dtype == float:
        out = np.append(unified.to_numpy(), np.nan)[codes]  # code -1: the appended NaN
        return pd.Series(out, index=values.index, dtype=float)
    cells = np.append(unified.to_numpy(dtype=object), None)[codes]
    return pd.Series(cells, index=values.index, dtype=object)


def _unify_distinct(text: pd.Series) -> pd.Series:
    """:func:`unify_parameter` on distinct present values: float, lists of floats, or str
    (missing values as NaN or None)."""
    missing = text.map(lambda v: isinstance(v, str) and v.strip() in MISSING_STRINGS).astype(bool)
    present = text[~missing]
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.notna().all():
        return pd.to_numeric(text.where(~missing), errors="coerce").astype(float)
    vectors = present.map(lambda v: _vector(str(v)))
    scalar = numbers.notna()
    if (vectors.notna() | scalar).all():
        cells = np.full(len(text), None, dtype=object)
        where = np.flatnonzero(~missing.to_numpy())  # positions of ``present``
        for k, v in zip(where[vectors.notna().to_numpy()], vectors[vectors.notna()]):
            cells[k] = v
        for k, v in zip(where[scalar.to_numpy()], numbers[scalar]):
            cells[k] = [float(v)]
        return pd.Series(cells, index=text.index, dtype=object)
    out = text.astype(str).astype(object)
    out[missing.to_numpy()] = None
    return out


def split_color(table: pd.DataFrame) -> pd.DataFrame:
    """Move RGB triplets of ``color`` to ``color_triplet`` (AllenSDK's split); the
    remaining ``color`` values are the −1/1 luminance of flashes."""
    if "color" not in table or not (table["color"].dtype == object or pd.api.types.is_string_dtype(table["color"])):
        return table
    is_triplet = table["color"].map(lambda v: isinstance(v, str) and _vector(v) is not None and len(_vector(v)) == 3)
    if not is_triplet.any():
        return table
    table = table.copy()
    triplet = table["color"].astype(object).where(is_triplet)
    table["color"] = table["color"].astype(object).where(~is_triplet)
    table["color_triplet"] = triplet if "color_triplet" not in table else table["color_triplet"].where(~is_triplet, triplet)
    return table


def _codes(column: pd.Series) -> np.ndarray:
    """Integer codes of a column's values, equal values (missing ones too) equal codes."""
    try:
        return pd.factorize(column, use_na_sentinel=True)[0]
    except TypeError:  # lists and arrays (vectors, color triplets) made hashable
        return pd.factorize(column.map(lambda v: tuple(v) if isinstance(v, (list, np.ndarray)) else v),
                            use_na_sentinel=True)[0]


def condition_ids(table: pd.DataFrame) -> np.ndarray:
    """AllenSDK's ``stimulus_condition_id`` of every row (rows in presentation order).

    Distinct combinations of ``stimulus_name`` and the parameter columns, numbered
    0, 1, … by first appearance; missing values equal each other.
    """
    if len(table) == 0:
        return np.empty(0, dtype=np.int64)
    key = np.zeros(len(table), dtype=np.int64)
    for c in ["stimulus_name", *parameter_columns(table)]:
        codes = _codes(table[c]).astype(np.int64) + 1  # missing: 0
        # one code per distinct (key, value) pair; both below the row count, so no overflow
        key = pd.factorize(key * (int(codes.max()) + 1) + codes)[0].astype(np.int64)
    return pd.factorize(key)[0].astype(np.int64)  # pandas numbers values by first appearance


def add_conditions(table: pd.DataFrame) -> pd.DataFrame:
    """``duration`` (s) and ``stimulus_condition_id`` added, columns in contract order."""
    table = table.copy()
    table["duration"] = table["stop_time"] - table["start_time"]
    table["stimulus_condition_id"] = condition_ids(table)
    params = parameter_columns(table)
    rest = [c for c in table.columns if c in NON_PARAMETERS]
    return table[BASE_COLUMNS + params + rest]


def conditions_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per ``stimulus_condition_id``: ``stimulus_name`` and its parameter values."""
    first = table.drop_duplicates("stimulus_condition_id").sort_values("stimulus_condition_id")
    return first[["stimulus_condition_id", "stimulus_name", *parameter_columns(table)]].reset_index(drop=True)


def epochs(table: pd.DataFrame) -> pd.DataFrame:
    """Contiguous runs of one stimulus and block, in presentation order: ``stimulus_name``,
    ``stimulus_block`` (NaN where absent), ``start_time`` of the first row, ``stop_time``
    of the last, ``rows``."""
    block = table["stimulus_block"].fillna(-1)
    run = ((table["stimulus_name"] != table["stimulus_name"].shift()) | (block != block.shift())).cumsum()
    g = table.groupby(run, sort=True)
    return pd.DataFrame({"stimulus_name": g["stimulus_name"].first(), "stimulus_block": g["stimulus_block"].first(),
                         "start_time": g["start_time"].first(), "stop_time": g["stop_time"].last(),
                         "rows": g.size()}).reset_index(drop=True)
