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
