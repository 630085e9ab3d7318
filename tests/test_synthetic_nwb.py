"""The generator writes valid NWB: pynwb reads every file it writes, and nwbinspector
finds nothing at CRITICAL or above (nor a pynwb validation failure) in any of them.

Written with h5py and then typed by ``synthetic.nwb_conform``; these checks keep that
honest for every writer (session, probe LFP files, every optional part).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from nwbinspector import Importance, inspect_nwbfile
from pynwb import NWBHDF5IO

from spikeprep.synthetic import SynthSpec, write_session

_SERIOUS = {Importance.CRITICAL, Importance.PYNWB_VALIDATION, Importance.ERROR}


@pytest.fixture(scope="module", params=["2020", "sdk"])
def files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    spec = SynthSpec(n_units=12, duration=40.0, n_probes=2, seed=5, layout=request.param, waveforms=True,
                     optotagging=True, eye_tracking=True, lfp=True, lfp_channels=6)
    session = write_session(tmp_path_factory.mktemp(f"nwb{request.param}") / "session.nwb", spec)
    lfp = sorted(session.parent.glob("probe_*_lfp.nwb"))
    assert len(lfp) == 2
    return [session, *lfp]


def test_pynwb_reads_every_file(files: list[Path]) -> None:
    session, *lfp = files
    with NWBHDF5IO(session, "r") as io:
        nwb = io.read()
        assert len(nwb.units) == 12
        assert set(nwb.processing) >= {"running", "optotagging", "eye_tracking", "raw_gaze_mapping",
                                       "filtered_gaze_mapping", "eye_tracking_rig_metadata"}
        assert nwb.subject.specimen_name.startswith("synthetic-")
        spikes = nwb.units.get_unit_spike_times(0)
        with h5py.File(session, "r") as f:
            assert nwb.devices["probeA"].probe_id == f["general/devices/probeA"].attrs["probe_id"]
            end = int(f["units/spike_times_index"][0])
            assert np.array_equal(spikes, f["units/spike_times"][:end])
        assert len(nwb.electrodes) == 2 * 384
        assert nwb.intervals["flashes_presentations"].to_dataframe()["color"].notna().all()
    for path in lfp:
        with NWBHDF5IO(path, "r") as io:
            nwb = io.read()
            (series,) = nwb.acquisition[path.stem.removesuffix("_lfp") + "_lfp"].electrical_series.values()
            assert series.data.shape == (40 * 1250, 6)
            assert len(series.electrodes) == 6
            assert "ecephys_csd" in nwb.processing["current_source_density"].data_interfaces


def test_nwbinspector_finds_nothing_serious(files: list[Path]) -> None:
    for path in files:
        serious = [f"{m.importance.name} {m.check_function_name} at {m.location}: {m.message[:200]}"
                   for m in inspect_nwbfile(nwbfile_path=path) if m.importance in _SERIOUS]
        assert not serious, f"{path.name}:\n" + "\n".join(serious)
