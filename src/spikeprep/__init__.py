"""spikeprep: Allen Visual Coding – Neuropixels sessions to analysis-ready data."""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Public name -> defining module. Loaded on first use so that `import spikeprep`
# (and `spikeprep --help`) stays fast.
_API = {
    "Session": "session",
    "SpikeTrains": "session",
    "SpikeprepError": "errors",
    "NWBFormatError": "errors",
    "DownloadError": "errors",
    "ExportError": "errors",
    "read_session": "nwb",
    "SpikeReader": "nwb",
    "write_session": "synthetic",
    "SynthSpec": "synthetic",
    "Kernel": "rates",
    "bin_counts": "rates",
    "make_grid": "rates",
    "gaussian_kernel": "rates",
    "firing_rates": "ratestore",
    "write_counts": "ratestore",
    "ExportOptions": "options",
    "open_rates": "readers",
    "open_counts": "readers",
    "open_units": "readers",
    "open_spike_times": "readers",
    "open_spike_trains": "readers",
    "open_stimulus": "readers",
    "open_running": "readers",
    "open_sessions": "readers",
    "open_record": "readers",
    "units_dataset": "readers",
    "to_pynapple": "ecosystem",
    "write_reports": "report",
    "rates_mean": "ratestats",
    "rates_summary": "ratestats",
    "rates_correlation": "ratestats",
    "add_layers": "layers",
    "annotate": "annotate",
    "isi_metrics": "qc",
    "passes_allen_qc": "qc",
    "download_file": "fetch",
    "session_table": "bucket",
    "download_sessions": "bucket",
    "export_file": "pipeline",
    "export_many": "pipeline",
    "run_sessions": "pipeline",
    "run_qc": "qcreport",
    "open_session": "align",
    "ExportedSession": "align",
    "align_session": "alignstore",
    "align_many": "pipeline",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'spikeprep' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
