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
    "firing_rates": "rates",
    "bin_counts": "rates",
    "write_counts": "ratestore",
    "make_grid": "rates",
    "gaussian_kernel": "rates",
    "ExportOptions": "export",
    "open_rates": "export",
    "open_counts": "export",
    "open_units": "export",
    "open_spike_times": "export",
    "open_spike_trains": "export",
    "open_stimulus": "export",
    "open_running": "export",
    "open_sessions": "export",
    "add_layers": "layers",
    "isi_metrics": "qc",
    "passes_allen_qc": "qc",
    "download_file": "fetch",
    "export_file": "pipeline",
    "export_many": "pipeline",
    "run_qc": "pipeline",
    "session_table": "pipeline",
    "download_sessions": "pipeline",
    "run_sessions": "pipeline",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'spikeprep' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
