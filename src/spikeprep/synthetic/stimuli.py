"""The stimulus presentation tables of a synthetic session, with the released files' quirks."""

from __future__ import annotations

import h5py
import numpy as np

from .spec import SynthSpec

__all__ = ["write_stimulus", "presentations"]

_STR = h5py.string_dtype("utf-8")
_BLOCKS = (  # (name, share of the session, seconds per presentation, gap)
    ("spontaneous", 0.02, None, 0),
    ("gabors", 0.09, 0.25, 0),
    ("spontaneous", 0.03, None, 0),
    ("flashes", 0.03, 0.25, 1.75),
    ("spontaneous", 0.03, None, 0),
    ("drifting_gratings", 0.2, 2.0, 1.0),
    ("natural_movie_three", 0.0886, 1 / 30, 0),
    ("natural_movie_one", 0.03, 1 / 30, 0),
    ("spontaneous", 0.03, None, 0),
    ("static_gratings", 0.13, 0.25, 0),
    ("natural_scenes", 0.0807, 0.25, 0),
    ("spontaneous", 0.03, None, 0),
    ("drifting_gratings", 0.06, 2.0, 1.0),
    ("natural_scenes", 0.0808, 0.25, 0),  # 5,952 natural-scene presentations at 9,600 s, as in a real session
)


def presentations(spec: SynthSpec) -> dict[str, dict[str, list]]:
    rng = np.random.default_rng([spec.seed, 3])
    T = spec.duration
    t = min(20.0, 0.02 * T)
    span = 0.96 * T
    tables: dict[str, dict[str, list]] = {}
    block = 0
    for name, share, dur, gap in _BLOCKS:
        length = share * span
        tab = tables.setdefault(name, {})
        if dur is None:
            _add_row(tab, t, t + length, name, None, {})
        else:
            n = max(1, int(length // (dur + gap)))
            starts = t + np.arange(n) * (dur + gap)
            for k in range(n):
                _add_row(tab, starts[k], starts[k] + dur, name, float(block), _params(name, k, rng))
            block += 1
        t += length
    return tables


def _add_row(tab: dict[str, list], start: float, stop: float, name: str, block: float | None, params: dict) -> None:
    row = {"start_time": float(start), "stop_time": float(stop), "stimulus_name": name}
    if block is not None:
        row["stimulus_block"] = block
    row.update(params)
    n_before = len(tab.get("start_time", []))
    for k, v in row.items():
        tab.setdefault(k, [None] * n_before).append(v)
    for col in tab.values():
        if len(col) < n_before + 1:
            col.append(None)


def _params(name: str, k: int, rng: np.random.Generator) -> dict:
    if name == "gabors":
        return {"contrast": 0.8, "orientation": float(rng.choice([0.0, 45.0, 90.0])),
                "spatial_frequency": "0.08",  # a string here, a float in the gratings
                "temporal_frequency": 4.0, "x_position": float(rng.integers(-4, 5) * 10),
                "y_position": float(rng.integers(-4, 5) * 10), "size": "[20.0, 20.0]",
                "phase": "[3644.93333333, 3644.93333333]", "mask": "circle", "units": "deg"}
    if name == "flashes":
        return {"color": float(rng.choice([-1.0, 1.0])), "contrast": 0.8, "mask": "None", "units": "deg"}
    if name == "drifting_gratings":
        blank = rng.random() < 0.05
        nan = float("nan")
        return {"contrast": 0.8, "orientation": nan if blank else float(rng.integers(0, 8) * 45),
                "temporal_frequency": nan if blank else float(rng.choice([1, 2, 4, 8, 15])),
                "spatial_frequency": 0.04, "phase": "[42471.86666667, 42471.86666667]",
                "size": "[250.0, 250.0]", "mask": "None", "units": "deg"}
    if name == "static_gratings":
        blank = rng.random() < 0.04
        return {"contrast": 0.8, "orientation": float("nan") if blank else float(rng.integers(0, 6) * 30),
                "spatial_frequency": float("nan") if blank else float(rng.choice([0.02, 0.04, 0.08, 0.16, 0.32])),
                "phase": "N/A" if blank else str(rng.choice(["0.0", "0.25", "0.5", "0.75"])),
                "size": "[250.0, 250.0]", "mask": "None", "units": "deg"}
    if name == "natural_scenes":
        return {"frame": float(rng.integers(-1, 118))}
    return {"frame": float(k % (3600 if name.endswith("three") else 900))}


def write_stimulus(f: h5py.File, spec: SynthSpec) -> None:
    index = {name: i for i, name in enumerate(dict.fromkeys(b[0] for b in _BLOCKS))}
    for name, tab in presentations(spec).items():
        g = f.create_group(f"intervals/{name}_presentations")
        n = len(tab["start_time"])
        if not (spec.layout == "2020" and name == "spontaneous"):
            tab["stimulus_index"] = [index[name]] * n
        cols = []
        for k, col in tab.items():
            if all(v is None for v in col):
                continue
            cols.append(k)
            if any(isinstance(v, str) for v in col):
                g.create_dataset(k, data=np.array(["N/A" if v is None else v for v in col], dtype=object), dtype=_STR)
            elif k == "stimulus_index":
                g[k] = np.asarray(col, dtype=np.int64)
            else:
                g[k] = np.array([np.nan if v is None else v for v in col], dtype=np.float64)
        g["id"] = np.arange(n, dtype=np.int64)
        g.create_dataset("tags", data=np.full(n, "stimulus_time_interval", dtype=object), dtype=_STR)
        g["tags_index"] = np.arange(1, n + 1, dtype=np.int64)
        g.attrs.update({"namespace": "core", "neurodata_type": "TimeIntervals",
                        "colnames": np.array(cols + ["tags"], dtype=object), "description": name})
