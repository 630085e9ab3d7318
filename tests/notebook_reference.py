"""The notebook's firing-rate function, kept verbatim as the reference it is.

It marks a bin 1 when the unit spiked in it (two spikes in one bin count as one),
convolves with the 11-tap Gaussian, and stores the result in a uint8 matrix (floored
to whole Hz; values above 255 wrap).
"""

import numpy as np


def get_firing_rates(spike_times, fs=200):
    t_stop = max(np.max(st) for st in spike_times.values() if len(st)) + 1
    n_bins = int(np.rint(t_stop * fs))
    kernel = np.exp(-(np.arange(11) - 5) ** 2 / 4)
    fr = np.zeros((len(spike_times), n_bins), dtype=np.uint8)
    for i, (unit_id, st) in enumerate(spike_times.items()):
        spk = np.zeros(n_bins)
        spk[np.floor(st * fs).astype(int)] = 1
        rate = np.convolve(spk, kernel, mode="same") * fs / np.sum(kernel)
        fr[i, :] = (rate.astype(np.int64) % 256).astype(np.uint8)
    return fr


def _read_activity(path):
    """The notebook's reader: h5py, a dict of spike times, pandas frames."""
    import h5py
    import pandas as pd

    with h5py.File(path, "r") as f:
        u = f["units"]
        ids = u["id"][:]
        index = u["spike_times_index"][:]
        st = u["spike_times"][:]
        spike_times = {}
        start = 0
        for uid, end in zip(ids, index):
            spike_times[uid] = st[start:end]
            start = end
        e = f["general/extracellular_ephys/electrodes"]
        loc = "location" if "location" in e else "manual_structure_acronym"
        electrodes = pd.DataFrame({"region": e[loc].asstr()[:], "probe": e["group_name"].asstr()[:],
                                   "hpos": e["probe_horizontal_position"][:], "vpos": e["probe_vertical_position"][:]},
                                  index=e["id"][:])
        channel = u["peak_channel_id"][:]
        wd = u["waveform_duration"][:]
        units = pd.DataFrame({"channel": channel, "id": ids, "snr": u["snr"][:], "d_prime": u["d_prime"][:],
                              "isi_viol": u["isi_violations"][:]})
        units = units.join(electrodes, on="channel")
        units["RS"] = wd > 0.4
        r = f["processing/running"]
        if "running_speed_end_times" in r:
            times = r["running_speed_end_times/timestamps"][:]
        else:
            times = r["running_speed/timestamps"][:][1]
        running = pd.DataFrame({"times": times, "running_speed": r["running_speed/data"][:]})
        tables = []
        for name, g in f["intervals"].items():
            if not name.endswith("_presentations"):
                continue
            block = g["stimulus_block"][:] if "stimulus_block" in g else np.full(g["start_time"].shape, -1.0)
            tables.append(pd.DataFrame({"time": g["start_time"][:], "stimulus_name": g["stimulus_name"].asstr()[:],
                                        "block": block}))
        stimulus = pd.concat(tables).sort_values("time").reset_index(drop=True)
    return units, spike_times, running, stimulus
