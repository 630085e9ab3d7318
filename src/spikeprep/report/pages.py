"""The visual report: ``OUT/session_<id>/report.html`` per session and ``OUT/report.html``.

Each page is one self-contained HTML file (figures embedded as PNG, no script, nothing
fetched), readable offline, fMRIPrep-style: what was exported, where the units sit,
how many pass QC, what the spikes look like, how the areas respond to the stimuli, and
a methods paragraph to paste into a paper.
"""

from __future__ import annotations

import base64
import html
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..analysis.alignment import aligned_counts
from ..analysis.session import ExportedSession
from ..core.anatomy import OUTSIDE_BRAIN
from ..core.errors import SpikeprepError
from ..core.stimulus import epochs
from ..export.layout import OutFolder, SessionRecord, atomic_write
from ..export.qc import session_summary
from ..export.verify import verify_session
from . import figures as figs
from .plots import build_isi_figure
from .qc import qc_table

__all__ = ["session_report", "index_report", "write_reports", "reportable", "methods_text", "PSTH_STIMULI"]

# stimulus: (window around onset in s, bin in s), and the most presentations averaged
PSTH_STIMULI = {"flashes": ((-0.1, 0.4), 0.01), "drifting_gratings": ((-0.5, 2.5), 0.05),
                "natural_scenes": ((-0.05, 0.3), 0.01), "static_gratings": ((-0.05, 0.3), 0.01)}
PSTH_MAX_PRESENTATIONS = 600
RASTER_SECONDS = 60.0

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:1px solid #ddd;
padding-bottom:.2em;margin-top:2em}table{border-collapse:collapse;font-size:.9em}td,th{padding:.25em .7em;
border-bottom:1px solid #eee;text-align:left}th{background:#f5f5f5}img{max-width:100%;height:auto;display:block;
margin:.5em 0}.note{color:#666;font-size:.9em}.methods{background:#f8f8f8;padding:1em;border-left:3px solid #999}
code{background:#f3f3f3;padding:0 .2em}
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def _table(rows: list[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


# ----------------------------------------------------------------------------- one session
def methods_text(record: SessionRecord, n_units: int, n_passing: int) -> str:
    """A methods paragraph generated from the export's parameters and versions."""
    p = record.params
    import h5py
    import numpy
    import pandas
    import zarr

    return (
        f"Session {record.session_id} of the Allen Brain Observatory Visual Coding – Neuropixels dataset "
        f"({record.session_type}) was processed with spikeprep {record.spikeprep_version} (h5py {h5py.__version__}, "
        f"numpy {numpy.__version__}, pandas {pandas.__version__}, zarr {zarr.__version__}), reading the released NWB "
        f"file ({record.layout} layout) without AllenSDK. All {n_units} sorted units were kept; {n_passing} passed "
        "AllenSDK's default quality filter (quality “good”, valid peak channel inside the brain, amplitude cutoff "
        "≤ 0.1, presence ratio ≥ 0.95, ISI violations ≤ 0.5). Spike times were counted exactly in half-open "
        f"{p.get('bin_size', 0.005) * 1000:g} ms bins [iΔ, (i+1)Δ) from 0 to the last spike + 1 s; firing rates were "
        f"obtained by convolving the counts with a Gaussian kernel of σ = {p.get('sigma_bins', 2 ** 0.5):.3g} bins "
        f"({p.get('sigma_bins', 2 ** 0.5) * p.get('bin_size', 0.005) * 1000:.2f} ms), {p.get('taps', 11)} taps, "
        "normalised to unit mass (rates in spikes/s). Units were classed regular-spiking when their waveform "
        "duration exceeded 0.4 ms. Refractory-period violations were quantified as the percentage of "
        f"inter-spike intervals shorter than {p.get('isi_threshold_ms', 5.0):g} ms, as the false-positive ratio of "
        "Hill et al. (2011) recomputed from the spikes (1.5 ms refractory period, 0.166 ms censored period, as in "
        "ecephys_spike_sorting), and as the contamination estimate of Llobet et al. (2022). Approximate cortical "
        "depth and layer in six visual areas (VISp, VISl, VISrl, VISal, VISpm, VISam) were assigned from each "
        "unit's peak-channel position relative to the area's extent on its probe, scaled to cumulative layer "
        "thicknesses of 100, 310, 430, 650 and 850 µm (L1, L2/3, L4, L5, L6). Stimulus-aligned counts used "
        "half-open bins relative to each presentation onset; stimulus conditions were numbered as AllenSDK does."
    )


def _grid_seconds(record: SessionRecord) -> float:
    g = record.outputs["binned"]["grid"]
    return float(g["t_stop"]) - float(g["t_start"])


def _raster_window(stimulus: pd.DataFrame, duration: float) -> tuple[float, float]:
    """60 s that start with a drifting-gratings block when there is one (responses show)."""
    dg = stimulus[stimulus["stimulus_name"] == "drifting_gratings"]
    start = float(dg["start_time"].iloc[0]) - 5.0 if len(dg) else duration / 3
    start = float(np.clip(start, 0.0, max(0.0, duration - RASTER_SECONDS)))
    return start, start + RASTER_SECONDS


def _population_rates(session: ExportedSession, areas: np.ndarray, duration: float) -> pd.DataFrame:
    """Spikes per second per unit in each area, 1 s bins (spike times counted block by block)."""
    trains = session.spike_trains
    names = sorted(set(areas))
    code = pd.Categorical(areas, categories=names).codes
    n_sec = max(1, int(duration - 1.0))  # whole seconds up to the last spike (the grid adds 1 s after it)
    total = np.zeros(len(names) * n_sec, dtype=np.int64)
    for a, b in trains.blocks():
        block = trains.block(a, b)
        sec = block.times.astype(np.int64)
        owner = code[a:b].astype(np.int64)[block.block_owner(0, b - a)]
        keep = sec < n_sec
        total += np.bincount((owner * n_sec + sec)[keep], minlength=len(names) * n_sec)
    per_area_units = np.bincount(code, minlength=len(names))
    rates = total.reshape(len(names), n_sec) / np.maximum(per_area_units, 1)[:, None]
    return pd.DataFrame(rates.T, index=pd.Index(np.arange(n_sec), name="time"), columns=names)


def _psth_curves(session: ExportedSession, areas: np.ndarray) -> tuple[dict, dict]:
    """Rate around onset per area (mean ± sem over units) for the usual stimuli present."""
    stim = session.presentations
    curves, counts = {}, {}
    trains = session.spike_trains
    for name, ((w0, w1), bin_) in PSTH_STIMULI.items():
        pres = stim[(stim["stimulus_name"] == name) & ~stim["is_invalid"].to_numpy(bool)]
        if not len(pres):
            continue
        if len(pres) > PSTH_MAX_PRESENTATIONS:  # evenly spaced, so every block contributes
            pres = pres.iloc[np.linspace(0, len(pres) - 1, PSTH_MAX_PRESENTATIONS).round().astype(int)]
        edges = np.linspace(w0, w1, int(round((w1 - w0) / bin_)) + 1)
        starts = pres["start_time"].to_numpy()
        unit_rates = np.zeros((len(edges) - 1, trains.n_units))
        for a in range(0, trains.n_units, 256):
            b = min(trains.n_units, a + 256)
            unit_rates[:, a:b] = aligned_counts(trains, starts, edges, a, b).mean(axis=0) / bin_
        t = (edges[:-1] + edges[1:]) / 2
        by_area = {}
        for area in sorted(set(areas) - {OUTSIDE_BRAIN}):
            cols = unit_rates[:, areas == area]
            if cols.shape[1] >= 3:
                sem = cols.std(axis=1, ddof=1) / np.sqrt(cols.shape[1])
                by_area[area] = (t, cols.mean(axis=1), sem, cols.shape[1])
        curves[name], counts[name] = by_area, len(pres)
    return curves, counts


def session_report(out: str | Path, session_id: int) -> Path:
    """Write ``OUT/session_<id>/report.html`` and return its path."""
    t0 = time.perf_counter()
    session = ExportedSession(out, session_id)
    record = session.record
    units, channels = session.units, session.channel_table.reset_index()
    duration = _grid_seconds(record)
    stimulus = session.presentations
    blocks = epochs(stimulus) if len(stimulus) else pd.DataFrame(columns=["stimulus_name", "start_time", "stop_time"])
    areas = units["region"].astype(object).fillna(OUTSIDE_BRAIN).to_numpy(dtype=object).astype(str)
    n_pass = int(units["passes_allen_qc"].sum())
    threshold = float(record.params.get("isi_threshold_ms", 5.0))
    subject = record.subject or {}
    header = _table([
        ("session", f"{session_id} ({html.escape(str(record.session_type))})"),
        ("subject", html.escape(f"{subject.get('genotype') or '?'}; sex {subject.get('sex') or '?'}; "
                                f"age {subject.get('age') or '?'}")),
        ("duration", f"{duration:,.0f} s (counts grid)"),
        ("probes", f"{channels['probe_name'].nunique()}"),
        ("units", f"{len(units):,} sorted ({n_pass:,} pass Allen's QC; {int(units['is_rs'].sum()):,} RS, "
                  f"{int((~units['is_rs']).sum()):,} FS)"),
        ("spikes", f"{int(record.counts.get('spikes', 0)):,}"),
        ("source", html.escape(f"{record.source.name if record.source else '?'} "
                               f"({(record.source.size or 0) / 1e9:.2f} GB, layout {record.layout})")),
        ("spikeprep", html.escape(f"{record.spikeprep_version}, exported {record.finished_at}")),
        ("parameters", "<code>" + html.escape(", ".join(f"{k}={v}" for k, v in record.params.items())) + "</code>"),
    ])
    # the raster: units by probe, then deep to shallow
    order = units.reset_index().sort_values(["probe_name", "probe_vertical_position"]).index.to_numpy()
    trains = session.spike_trains
    window = _raster_window(stimulus, duration)
    raster = figs.raster([trains[int(i)] for i in order], [areas[int(i)] for i in order], window,
                         session.running_speed, blocks)
    curves, n_pres = _psth_curves(session, areas)
    sections = [
        f"<h1>spikeprep report: session {session_id}</h1>", header,
        "<h2>Probes</h2>",
        '<p class="note">Areas along each shank (colour bands), approximate layer boundaries in the visual areas '
        "(dotted), and every unit at its peak channel: dot area ∝ √(firing rate), blue regular-spiking (waveform "
        "duration &gt; 0.4 ms), red fast-spiking.</p>",
        _img(figs.png(figs.probe_maps(units, channels)), "probe maps"),
        "<h2>Unit yield</h2>", _img(figs.png(figs.unit_yield(units)), "unit yield by area and layer"),
        "<h2>Quality metrics</h2>",
        f'<p class="note">Every sorted unit ({len(units):,}), noise clusters included. AllenSDK\'s default filter '
        f"keeps {n_pass:,}: quality “good”, valid channel in the brain, and the three thresholds drawn.</p>",
        _img(figs.png(figs.qc_distributions(units, threshold)), "QC metric distributions"),
        f"<h2>Raster, {window[0]:.0f}–{window[1]:.0f} s</h2>", _img(figs.png(raster, dpi=90), "raster"),
        "<h2>Population rate per area</h2>",
        _img(figs.png(figs.population_rates(_population_rates(session, areas, duration), blocks)), "population rates"),
    ]
    if curves:
        sections += ["<h2>Responses to the stimuli</h2>",
                     f'<p class="note">Rate per area around each onset (mean ± sem over the area\'s units, areas with '
                     f"≥ 3 units), over up to {PSTH_MAX_PRESENTATIONS} evenly spaced valid presentations; "
                     "half-open bins.</p>", _img(figs.png(figs.psths(curves, n_pres)), "PSTH per area")]
    else:
        sections += ["<h2>Responses to the stimuli</h2>",
                     '<p class="note">No flashes, drifting gratings, natural scenes or static gratings here.</p>']
    sections += _tuning_sections(session)
    sections += ["<h2>Methods</h2>", f'<p class="methods">{html.escape(methods_text(record, len(units), n_pass))}</p>',
                 "<p class=\"note\">References: Siegle et al. (2021) Nature 592:86–92 (dataset and QC metrics); "
                 "Hill et al. (2011) J Neurosci 31:8699 (ISI violations); Llobet et al. (2022) bioRxiv "
                 "2022.02.08.479192 (contamination).</p>",
                 f'<p class="note">Report written in {time.perf_counter() - t0:.1f} s. '
                 '<a href="../report.html">All sessions</a></p>']
    path = session.folder / "report.html"
    atomic_write(path, lambda p: p.write_text(_page(f"spikeprep session {session_id}", "\n".join(sections))))
    return path


def _tuning_sections(session: ExportedSession) -> list[str]:
    """Receptive fields, selectivity, scenes and flashes, when ``spikeprep metrics`` ran."""
    import xarray as xr

    from ..analysis.tuning.outputs import RECEPTIVE_FIELDS, UNIT_METRICS
    from . import tuning as tfigs

    path = session.folder / UNIT_METRICS
    if not path.exists():
        return ["<h2>Tuning and receptive fields</h2>",
                '<p class="note">Not computed yet: <code>spikeprep metrics OUT</code> (or <code>export --metrics</code>) '
                "adds AllenSDK's tuning metrics and the receptive fields here.</p>"]
    table = tfigs.tuned_units(pd.read_parquet(path).set_index("unit_id"), session.units)
    maps = xr.open_zarr(session.folder / RECEPTIVE_FIELDS)["receptive_fields"].load()
    return [
        "<h2>Receptive fields</h2>",
        '<p class="note">Spike counts in the first 0.249 s after each gabor, per position on the screen (deg; top of '
        "the screen up), each map scaled to its peak: up to four units per area with the most significant on-screen "
        "field (AllenSDK's chi-square bootstrap p), units passing Allen's QC.</p>",
        _img(figs.png(tfigs.rf_grid(table, maps)), "receptive fields per area"),
        "<h2>Orientation and direction selectivity</h2>",
        '<p class="note">Drifting gratings, units passing Allen\'s QC in areas with ≥ 3 of them: global OSI and DSI '
        "at each unit's preferred temporal frequency, and the preferred directions.</p>",
        _img(figs.png(tfigs.selectivity(table)), "OSI, DSI and preferred directions per area"),
        "<h2>Natural scenes and flashes</h2>",
        _img(figs.png(tfigs.scenes_and_flashes(table)), "image selectivity and ON/OFF per area"),
    ]


def _tuning_across_sessions(out: Path, units: dict[int, pd.DataFrame]) -> list[str]:
    """The metric distributions per area of ``OUT/unit_metrics.parquet`` (``units``: each
    reported session's units)."""
    from ..analysis.tuning.outputs import UNIT_METRICS
    from . import tuning as tfigs

    path = Path(out) / UNIT_METRICS
    if not path.exists():
        return []
    metrics = pd.read_parquet(path)
    parts = []
    for sid, session_units in units.items():
        rows = metrics[metrics["session_id"] == sid].set_index("unit_id")
        if len(rows):
            parts.append(tfigs.tuned_units(rows, session_units))
    if not parts:
        return []
    table = pd.concat(parts)
    return ["<h2>Tuning across sessions</h2>",
            f'<p class="note">{len(table):,} units passing Allen\'s QC in {len(parts)} sessions '
            "(<code>unit_metrics.parquet</code>), areas with ≥ 3 units.</p>",
            _img(figs.png(tfigs.per_area_across_sessions(table)), "metric distributions per area across sessions")]


# ----------------------------------------------------------------------------- the dataset
def index_report(out: str | Path, session_ids: list[int] | None = None,
                 broken: dict[int, list[str]] | None = None) -> Path:
    """Write ``OUT/report.html``: every session (counts, QC, link), the ISI figure across
    sessions and the unit yield by area across sessions.

    ``session_ids`` (default: every exported one) are reported; ``broken`` maps the
    sessions left out to their problems, listed under "Not reported"."""
    root = OutFolder(out)
    ids = root.exported() if session_ids is None else list(session_ids)
    broken = broken or {}
    if not ids:
        raise SpikeprepError(f"{out}: no exported session to report on"
                             + (f" ({len(broken)} failed their checks: spikeprep verify {out})" if broken else ""))
    per_unit = pd.concat([qc_table(out, sid) for sid in ids], ignore_index=True)
    summary = session_summary(per_unit).set_index("session_id")
    rows, yields = [], {}
    every: dict[int, pd.DataFrame] = {}
    for sid in ids:
        rec = root.session(sid).read_record()
        units = every[sid] = ExportedSession(out, sid).units
        passing = units[units["passes_allen_qc"]]
        yields[sid] = passing["region"].astype(object).fillna(OUTSIDE_BRAIN).value_counts()
        link = f"session_{sid}/report.html"
        exists = (root.session(sid) / "report.html").exists()
        name = f'<a href="{link}">{sid}</a>' if exists else str(sid)
        s = summary.loc[sid]
        rows.append(f"<tr><td>{name}</td><td>{html.escape(str(rec.session_type))}</td><td>{len(units):,}</td>"
                    f"<td>{len(passing):,}</td><td>{int(rec.counts.get('spikes', 0)):,}</td>"
                    f"<td>{s['mean_pct']:.2f} ± {s['std_pct']:.2f} (n = {int(s['n_units'])})</td></tr>")
    table = ("<table><tr><th>session</th><th>type</th><th>units</th><th>pass QC</th><th>spikes</th>"
             "<th>% of ISIs &lt; threshold, mean ± std over selected units</th></tr>" + "".join(rows) + "</table>")
    counts = pd.DataFrame(yields).fillna(0).astype(int).T
    body = "\n".join([
        f"<h1>spikeprep report: {len(ids)} sessions</h1>", table,
        "<h2>ISI violations</h2>",
        '<p class="note">Selected units: regular-spiking, SNR &gt; 2.5, in the six visual areas (the notebook\'s '
        "selection).</p>",
        _img(figs.png(build_isi_figure(per_unit, summary.reset_index())), "ISI violations across sessions"),
        "<h2>Unit yield</h2>", _img(figs.png(figs.yield_across_sessions(counts)), "unit yield across sessions"),
        *_tuning_across_sessions(root.path, every),
        _not_reported(broken),
    ])
    path = root.path / "report.html"
    atomic_write(path, lambda p: p.write_text(_page("spikeprep report", body)))
    return path


def _not_reported(broken: dict[int, list[str]]) -> str:
    if not broken:
        return ""
    rows = "".join(f"<tr><td>{sid}</td><td>{'<br>'.join(html.escape(p) for p in problems)}</td></tr>"
                   for sid, problems in sorted(broken.items()))
    return ("<h2>Not reported</h2><p class=\"note\">These session folders fail their checks "
            "(<code>spikeprep verify</code>); export them again.</p>"
            f"<table><tr><th>session</th><th>problems</th></tr>{rows}</table>")


def reportable(out: str | Path, session_ids: list[int] | None = None) -> tuple[list[int], dict[int, list[str]]]:
    """The sessions whose folders pass every declared check, and the problems of the
    others (as :func:`spikeprep.export.verify.verify_session` words them)."""
    root = OutFolder(out)
    ids = session_ids if session_ids is not None else [f.session_id for f in root.session_folders()]
    ready, broken = [], {}
    for sid in ids:
        problems = verify_session(root.session(sid))
        if problems:
            broken[sid] = problems
        else:
            ready.append(sid)
    return ready, broken


def write_reports(out: str | Path, session_ids: list[int] | None = None, *, progress: bool = False,
                  on_skip: Callable[[int, list[str]], None] | None = None) -> list[Path]:
    """Every session's report (or those given), then the index; returns the pages written.

    A session folder that fails its checks (a declared output missing or unreadable, an
    older schema, an unfinished export) gets no page: ``on_skip(session_id, problems)``
    is called for it (default: a warning naming the problems), and the index lists it
    under "Not reported"."""
    from tqdm.auto import tqdm

    ready, broken = reportable(out, session_ids)
    for sid, problems in broken.items():
        if on_skip is None:
            warnings.warn(f"session {sid} not reported: {'; '.join(problems)}", stacklevel=2)
        else:
            on_skip(sid, problems)
    pages = [session_report(out, sid) for sid in tqdm(ready, desc="report", unit="session",
                                                      disable=None if progress else True)]
    return pages + [index_report(out, ready, broken)]
