"""``spikeprep demo``: synthetic session → export → QC → summary and a PNG."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

__all__ = ["run_demo"]


def run_demo(folder: Path, *, n_units: int = 300, duration: float = 900.0, n_probes: int = 3, seed: int = 0) -> int:
    """Run the whole pipeline on one synthetic session in ``folder``; return an exit code."""
    from .core.anatomy import OUTSIDE_BRAIN
    from .core.options import ExportOptions
    from .export.readers import open_rates, open_running, open_spike_times, open_stimulus, open_units
    from .pipeline import export_file
    from .report.plots import session_figure
    from .report.qc import run_qc
    from .synthetic.writer import SynthSpec, check_spec, write_session

    spec = SynthSpec(n_units=n_units, duration=duration, n_probes=n_probes, seed=seed, tuned=True)
    check_spec(spec)
    folder.mkdir(parents=True, exist_ok=True)
    nwb = folder / f"session_{spec.sid}.nwb"
    out = folder / "out"
    t0 = time.perf_counter()
    settings = folder / "demo_settings.json"
    wanted = json.dumps(asdict(spec), sort_keys=True)
    changed = not nwb.exists() or not settings.exists() or settings.read_text() != wanted
    if changed:  # new settings: a new file, exported again (never "skipped" with the old one)
        write_session(nwb, spec)
        settings.write_text(wanted)
    print(f"synthetic session {spec.sid}: {nwb} ({nwb.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s)")
    result = export_file(nwb, out, ExportOptions(), force=changed)
    if not result.ok:
        print(result.message)
        return 1
    print(f"export: {result.status} in {result.seconds:.1f} s -> {out / f'session_{spec.sid}'}")
    run_qc(out)

    units = open_units(out, spec.sid)
    print("\nunits per area and layer (all clusters):")
    table = units.assign(region=units["region"].astype(object).fillna(OUTSIDE_BRAIN),
                         layer=units["layer"].astype(object).fillna("-"))
    print(table.groupby(["region", "layer"]).size().unstack(fill_value=0).to_string())
    print(f"\nRS {int(units['is_rs'].sum())} / FS {int((~units['is_rs']).sum())}; "
          f"passing Allen's default QC: {int(units['passes_allen_qc'].sum())} of {len(units)}")
    print("\nfiles written:")
    for p in sorted((out / f"session_{spec.sid}").iterdir()):
        size = sum(f.stat().st_size for f in p.rglob("*")) if p.is_dir() else p.stat().st_size
        print(f"  {p.relative_to(folder)}  {size / 1e6:.2f} MB")

    png = _figure(out, spec.sid, folder / "demo_session.png", session_figure, open_units, open_spike_times,
                  open_stimulus, open_running, open_rates)
    print(f"  {png.relative_to(folder)} (raster, rates and running speed)")
    import pandas as pd

    from .pipeline import metrics_many
    from .report.pages import write_reports

    metrics = metrics_many(out, progress=False)
    if not all(r.ok for r in metrics):
        print("\n".join(r.message for r in metrics if not r.ok))
        return 1
    tuned = pd.read_parquet(out / f"session_{spec.sid}" / "unit_metrics.parquet")
    print(f"\ntuning metrics (AllenSDK's stimulus analyses) of {len(tuned)} units in {metrics[0].seconds:.1f} s; "
          f"{int((tuned['p_value_rf'] < 0.01).sum())} units with a receptive field (p < 0.01)")
    write_reports(out)
    print(f"report: {out / 'report.html'} (session page: {out / f'session_{spec.sid}' / 'report.html'})")
    print("\nopen them in Python:\n"
          "  import spikeprep\n"
          f"  units = spikeprep.open_units('{out}', {spec.sid})\n"
          f"  rates = spikeprep.open_rates('{out}', {spec.sid})  # lazy xarray, Hz")
    print(f"\ndemo done in {time.perf_counter() - t0:.1f} s")
    return 0


def _figure(out, sid, png, session_figure, open_units, open_spike_times, open_stimulus, open_running, open_rates) -> Path:
    units = open_units(out, sid)
    stim = open_stimulus(out, sid)
    block = stim[stim["stimulus_name"] == "drifting_gratings"]
    start = float(block["start_time"].iloc[0]) if len(block) else float(stim["start_time"].iloc[0])
    window = (start, start + 4.0)
    cortical = units[units["layer"].notna() & (units["n_spikes"] > 100)]
    pool = (cortical if len(cortical) >= 5 else units).sort_values("n_spikes")
    mid = len(pool) // 2
    pick = pool.index[max(0, mid - 2) : mid + 3]  # typical units, not the busiest
    spikes = open_spike_times(out, sid)
    # σ = 50 ms for display: the export's 7 ms kernel shows each spike as its own bump at these rates
    # (81 taps = ±4 σ: a shorter kernel would cut the Gaussian's tails off)
    rates = open_rates(out, sid, sigma_ms=50.0, taps=81).sel(time=slice(*window), unit_id=list(pick)).to_pandas()
    title = (f"session {sid}: {len(pick)} cortical units, {window[0]:.0f}-{window[1]:.0f} s (drifting gratings)\n"
             "rates: exact 5 ms counts smoothed with a Gaussian of σ = 50 ms")
    return session_figure({int(u): spikes[int(u)] for u in pick}, rates, open_running(out, sid), window, title, png)
