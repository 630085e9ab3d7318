"""Shared fixtures: the AllenSDK reference files and small synthetic sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from spikeprep.synthetic import SynthSpec, write_session

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "allen" / "reference"
REFERENCE_NAMES = sorted(p.stem for p in REFERENCE.glob("*.nwb"))


REFERENCE2 = REFERENCE.parent / "reference2"
NAMES2 = sorted(p.stem for p in REFERENCE2.glob("*s.nwb"))


def full(name: str) -> Path:
    """AllenSDK's output for every session call on reference2 file ``name``."""
    return REFERENCE2 / f"{name}.allensdk" / "full"


@pytest.fixture(scope="session")
def reference2_sessions(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Each reference2 file exported once and opened (name → ExportedSession)."""
    import spikeprep
    from spikeprep.pipeline import export_file

    out = tmp_path_factory.mktemp("reference2")
    found = {}
    for name in NAMES2:
        r = export_file(REFERENCE2 / f"{name}.nwb", out)
        assert r.ok, r.message
        found[name] = spikeprep.open_session(out, r.session_id)
    return found


def reference_nwb(name: str) -> Path:
    return REFERENCE / f"{name}.nwb"


def reference_dir(name: str) -> Path:
    return REFERENCE / f"{name}.allensdk"


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synth")


@pytest.fixture(scope="session")
def small_nwb(synth_dir: Path) -> Path:
    """A small 2020-layout session: 3 probes, 120 units, 240 s."""
    return write_session(synth_dir / "session_700000000.nwb", SynthSpec(n_units=120, duration=240.0, n_probes=3, seed=0))


@pytest.fixture(scope="session")
def layout_files(synth_dir: Path) -> dict[str, Path]:
    """The same content written in each of the three layouts."""
    out = {}
    for layout in ("2020", "sdk", "2019"):
        spec = SynthSpec(n_units=60, duration=120.0, n_probes=2, seed=5, layout=layout)
        out[layout] = write_session(synth_dir / f"layout_{layout}.nwb", spec)
    return out
