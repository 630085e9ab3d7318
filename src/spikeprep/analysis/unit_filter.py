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

from ..core.options import AMPLITUDE_CUTOFF_MAX, ISI_VIOLATIONS_MAX, PRESENCE_RATIO_MIN
from ..export.qc import passes_allen_qc
from ..io.allensdk_tables import UNIT_FILTER_DEFAULTS, unit_filter_value

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
    amplitude_cutoff_maximum: float = AMPLITUDE_CUTOFF_MAX
    presence_ratio_minimum: float = PRESENCE_RATIO_MIN
    isi_violations_maximum: float = ISI_VIOLATIONS_MAX

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "UnitFilter":
        """From AllenSDK's ``api_kwargs``: a bound left out is its default, a bound of None
        is no bound, as in AllenSDK; TypeError naming an unknown argument."""
        unknown = sorted(set(kwargs) - set(cls.__dataclass_fields__))
        if unknown:
            raise TypeError(f"unknown unit filter argument {unknown[0]!r}; known: {', '.join(cls.__dataclass_fields__)}")
        bounds = {k: unit_filter_value(k, kwargs) for k in UNIT_FILTER_DEFAULTS}
        flags = {k: bool(v) for k, v in kwargs.items() if k not in UNIT_FILTER_DEFAULTS}
        return cls(**flags, **bounds)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def units(self, units: pd.DataFrame) -> np.ndarray:
        """Which rows of an exported units table pass (bool array)."""
        return passes_allen_qc(units, amplitude_cutoff_max=self.amplitude_cutoff_maximum,
                               presence_ratio_min=self.presence_ratio_minimum,
                               isi_violations_max=self.isi_violations_maximum, by_validity=self.filter_by_validity,
                               in_brain=self.filter_out_of_brain_units).to_numpy()

    def channels(self, channels: pd.DataFrame) -> np.ndarray:
        """Which rows of a channels table pass (valid channels, with ``filter_by_validity``)."""
        if not self.filter_by_validity:
            return np.ones(len(channels), dtype=bool)
        return channels["valid_data"].to_numpy(dtype=bool)
