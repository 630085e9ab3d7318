"""spikeprep: Allen Visual Coding – Neuropixels sessions to analysis-ready data."""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Public name -> defining module. Loaded on first use so that `import spikeprep`
# (and `spikeprep --help`) stays fast.
_API = {
    "Session": "core.model",
    "SpikeTrains": "core.model",
    "SpikeprepError": "core.errors",
    "NWBFormatError": "core.errors",
    "DownloadError": "core.errors",
    "ExportError": "core.errors",
    "read_session": "io.nwb",
    "SpikeReader": "io.nwb",
    "write_session": "synthetic.writer",
    "SynthSpec": "synthetic.writer",
    "Kernel": "rates.binning",
    "bin_counts": "rates.binning",
    "make_grid": "rates.binning",
    "gaussian_kernel": "rates.binning",
    "firing_rates": "rates.store",
    "write_counts": "rates.writer",
    "ExportOptions": "core.options",
    "open_rates": "export.readers",
    "open_counts": "export.readers",
    "open_units": "export.readers",
    "open_spike_times": "export.readers",
    "open_spike_trains": "export.readers",
    "open_stimulus": "export.readers",
    "open_running": "export.readers",
    "open_sessions": "export.readers",
    "open_record": "export.readers",
    "units_dataset": "export.readers",
    "to_pynapple": "analysis.ecosystem",
    "write_reports": "report.pages",
    "rates_mean": "analysis.rate_summaries",
    "rates_summary": "analysis.rate_summaries",
    "rates_correlation": "analysis.rate_summaries",
    "add_layers": "core.anatomy",
    "annotate": "export.annotate",
    "isi_metrics": "export.qc",
    "passes_allen_qc": "export.qc",
    "download_file": "io.download",
    "session_table": "io.bucket",
    "open_source": "io.resolve",
    "download_sessions": "io.bucket",
    "export_file": "pipeline",
    "export_many": "pipeline",
    "run_sessions": "pipeline",
    "run_qc": "report.qc",
    "open_session": "analysis.session",
    "ExportedSession": "analysis.session",
    "EcephysSession": "ecephys",
    "EcephysProjectCache": "project_cache",
    "ReceptiveFieldMapping": "analysis.tuning",
    "DriftingGratings": "analysis.tuning",
    "StaticGratings": "analysis.tuning",
    "NaturalScenes": "analysis.tuning",
    "Flashes": "analysis.tuning",
    "NaturalMovies": "analysis.tuning",
    "DotMotion": "analysis.tuning",
    "open_cache": "project_cache",
    "UnitFilter": "analysis.unit_filter",
    "align_session": "analysis.aligned_store",
    "align_many": "pipeline",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'spikeprep' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
