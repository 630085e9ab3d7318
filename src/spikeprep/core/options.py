"""Every export parameter, its default and its help text, declared once.

:class:`ExportOptions` is what an export is asked to do; it is recorded in
``session.json`` and compared on a rerun. The command line builds its flags from the
fields' metadata (:func:`option_fields`), so a new parameter is one field here.
Light on purpose (no numpy): ``spikeprep --help`` imports it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterator

__all__ = ["ExportOptions", "OptionField", "option_fields", "BIN_SIZE_S", "SIGMA_BINS", "TAPS", "ISI_THRESHOLD_MS",
           "AMPLITUDE_CUTOFF_MAX", "PRESENCE_RATIO_MIN", "ISI_VIOLATIONS_MAX"]

BIN_SIZE_S = 0.005          # the notebook's 5 ms bins (200 Hz)
SIGMA_BINS = math.sqrt(2.0)  # the notebook's kernel: exp(-(k - 5)² / 4), σ = √2 bins = 7.07 ms
TAPS = 11
ISI_THRESHOLD_MS = 5.0      # the notebook's ISI-violation threshold
# AllenSDK's default unit filter: amplitude_cutoff <= 0.1, presence_ratio >= 0.95, isi_violations <= 0.5
AMPLITUDE_CUTOFF_MAX, PRESENCE_RATIO_MIN, ISI_VIOLATIONS_MAX = 0.1, 0.95, 0.5


def _opt(default: Any, help: str, *, flag: str | None = None, metavar: str | None = None) -> Any:
    return field(default=default, metadata={"help": help, "flag": flag, "metavar": metavar})


@dataclass(frozen=True)
class ExportOptions:
    """Every parameter that changes what an export writes (recorded in session.json).

    Parameters
    ----------
    bin_size : float
        Bin of the counts grid (s).
    store_rates : bool
        Also store materialised float32 rates in ``binned.zarr``.
    sigma_bins : float
        σ of the Gaussian kernel of the stored rates, in bins.
    taps : int
        Taps of that kernel (odd).
    units_query : str, optional
        A pandas query on the units table; only matching units are exported.
    legacy_pickle : bool
        Also write the notebook's pickles under ``OUT/legacy``.
    isi_threshold_ms : float
        Threshold of ``isi_5ms_pct`` (ms).
    waveforms : bool
        Also export every unit's mean waveform on every channel (``mean_waveforms.zarr``).
    amplitudes : bool
        Also export every spike's amplitude (``spike_amplitudes.parquet``).
    """

    bin_size: float = _opt(BIN_SIZE_S, f"bin size of the spike-count grid in s (default {BIN_SIZE_S})", metavar="S")
    store_rates: bool = _opt(False, "also store float32 smoothed rates in binned.zarr (large; rates are otherwise "
                                    "computed lazily by open_rates)")
    sigma_bins: float = _opt(SIGMA_BINS, f"sigma of the stored rates' Gaussian kernel, in bins (default "
                                         f"{SIGMA_BINS:.4g})", metavar="BINS")
    taps: int = _opt(TAPS, f"taps of the stored rates' kernel, odd (default {TAPS})", metavar="N")
    units_query: str | None = _opt(None, "keep only units matching a pandas query on the units table, e.g. "
                                         "\"quality == 'good'\"", metavar="QUERY")
    legacy_pickle: bool = _opt(False, "also write the notebook's pickles to OUT/legacy")
    isi_threshold_ms: float = _opt(ISI_THRESHOLD_MS, f"ISI threshold of isi_5ms_pct and the QC, in ms (default "
                                                     f"{ISI_THRESHOLD_MS:g})", flag="--threshold-ms", metavar="MS")
    waveforms: bool = _opt(False, "also export every unit's mean waveform on every channel (mean_waveforms.zarr; "
                                  "with the amplitudes, 63%% of a released file's bytes: a streamed export then "
                                  "fetches them)")
    amplitudes: bool = _opt(False, "also export every spike's amplitude (spike_amplitudes.parquet)")

    def __post_init__(self) -> None:
        for name in ("bin_size", "sigma_bins", "isi_threshold_ms"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not isinstance(self.taps, int) or self.taps < 1 or self.taps % 2 == 0:
            raise ValueError(f"taps must be a positive odd number, got {self.taps!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OptionField:
    """One field of :class:`ExportOptions` as the command line sees it."""

    name: str
    flag: str
    type: type
    default: Any
    help: str
    metavar: str | None


def option_fields() -> Iterator[OptionField]:
    """The command-line view of every :class:`ExportOptions` field."""
    for f in fields(ExportOptions):
        meta = f.metadata
        kind = {"float": float, "int": int, "bool": bool}.get(str(f.type), str)
        yield OptionField(f.name, meta.get("flag") or "--" + f.name.replace("_", "-"), kind, f.default,
                          meta["help"], meta.get("metavar"))
