"""``spikeprep units``: the units of exported sessions, or of a cache's catalog."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .cliutil import EXIT_OK
from .cliutil import usage as _usage
from .cliutil import where as _where

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["cmd_units", "add_units_command"]


def cmd_units(a: argparse.Namespace) -> int:
    import pandas as pd

    from .analysis.ecosystem import unit_counts
    from .export.readers import open_units

    if (a.out is None) == (a.cache is None):
        raise SystemExit(_usage(a, "give OUT (exported sessions) or --cache DIR (the catalog's units), not both"))
    if a.cache is not None:
        return _catalog_units(a)
    units = open_units(a.out)
    units = _where(a, units)
    if a.output:
        _write_units(a, units)
    counts = unit_counts(units)
    with pd.option_context("display.max_rows", 500, "display.width", 200):
        print(counts.to_string())
    print(f"{len(units)} units ({int(units['passes_allen_qc'].sum())} passing Allen's QC) in "
          f"{units['session_id'].nunique()} sessions")
    return EXIT_OK


def _write_units(a: argparse.Namespace, units: "pd.DataFrame") -> None:
    from .export.layout import atomic_write

    out = Path(a.output)
    if out.suffix not in (".parquet", ".csv"):
        raise SystemExit(_usage(a, f"--output {out}: name a .parquet or .csv file"))
    atomic_write(out, lambda p: units.to_parquet(p) if out.suffix == ".parquet" else units.to_csv(p))
    print(f"{len(units)} units written to {out}")


def _catalog_units(a: argparse.Namespace) -> int:
    """``units --cache``: AllenSDK's ``get_units()`` on the cache's catalog, no export."""
    import pandas as pd

    from .project_cache import EcephysProjectCache

    units = _where(a, EcephysProjectCache.fixed(manifest=a.cache).get_units())
    if a.output:
        _write_units(a, units)
    counts = units.groupby(["ecephys_session_id", "ecephys_structure_acronym"]).size().unstack(fill_value=0)
    with pd.option_context("display.max_rows", 500, "display.width", 200):
        print(counts.to_string())
    print(f"{len(units)} units passing AllenSDK's default filter in {units['ecephys_session_id'].nunique()} sessions "
          f"(the catalog of {a.cache})")
    return EXIT_OK


def add_units_command(add: Callable[..., Any]) -> None:
    p = add("units", cmd_units, "units of every exported session (or of the catalog, --cache): counts by session "
                                "and area")
    p.add_argument("out", metavar="OUT", nargs="?", help="output folder of spikeprep export")
    p.add_argument("--cache", metavar="DIR", help="instead of OUT: the units of the catalog in this cache folder "
                                                  "(AllenSDK's get_units(), no export)")
    p.add_argument("--where", metavar="QUERY", help="pandas query on the units table, e.g. \"passes_allen_qc and "
                                                   "region == 'VISp'\"")
    p.add_argument("--output", metavar="FILE", help="also write the selected units to FILE (.parquet or .csv)")
