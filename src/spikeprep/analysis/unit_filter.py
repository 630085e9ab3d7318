"""AllenSDK's default unit filter, as a value: which units and channels a session view
shows when it is asked to filter as AllenSDK does (``from_nwb_path``, the project cache).

``spikeprep.open_session`` shows every unit (the filter is the ``passes_allen_qc``
column); an AllenSDK port that expects AllenSDK's filtered tables gets them from a
session opened with a :class:`UnitFilter`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["UnitFilter"]


@dataclass(frozen=True)
class UnitFilter:
    """AllenSDK's unit filter (its defaults). A NaN metric fails every bound, as in
    AllenSDK (even an infinite one).

    Parameters
    ----------
    filter_by_validity : bool
        Keep good units on valid channels only (and valid channels only).
    filter_out_of_brain_units : bool
        Drop units whose peak channel has no structure.
    amplitude_cutoff_maximum, presence_ratio_minimum, isi_violations_maximum : float
        Bounds on the quality metrics.
    """

    filter_by_validity: bool = True
    filter_out_of_brain_units: bool = True
    amplitude_cutoff_maximum: float = 0.1
    presence_ratio_minimum: float = 0.95
    isi_violations_maximum: float = 0.5

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "UnitFilter":
        """From AllenSDK's ``api_kwargs``; TypeError naming an unknown one."""
        unknown = sorted(set(kwargs) - set(cls.__dataclass_fields__))
        if unknown:
            raise TypeError(f"unknown unit filter argument {unknown[0]!r}; known: {', '.join(cls.__dataclass_fields__)}")
        return cls(**{k: (float(v) if k.endswith(("maximum", "minimum")) else bool(v)) for k, v in kwargs.items()})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def units(self, units: pd.DataFrame) -> np.ndarray:
        """Which rows of an exported units table pass (bool array)."""
        keep = np.ones(len(units), dtype=bool)
        if self.filter_by_validity:
            keep &= (units["quality"].astype(object) == "good").to_numpy() & units["valid_data"].to_numpy(dtype=bool)
        if self.filter_out_of_brain_units:
            keep &= units["region"].notna().to_numpy()
        with np.errstate(invalid="ignore"):
            keep &= (units["amplitude_cutoff"].to_numpy(dtype=float) <= self.amplitude_cutoff_maximum)
            keep &= (units["presence_ratio"].to_numpy(dtype=float) >= self.presence_ratio_minimum)
            keep &= (units["isi_violations"].to_numpy(dtype=float) <= self.isi_violations_maximum)
        return keep

    def channels(self, channels: pd.DataFrame) -> np.ndarray:
        """Which rows of a channels table pass (valid channels, with ``filter_by_validity``)."""
        if not self.filter_by_validity:
            return np.ones(len(channels), dtype=bool)
        return channels["valid_data"].to_numpy(dtype=bool)
