"""What a synthetic session holds: :class:`SynthSpec` and its checks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SynthSpec", "check_spec", "LAYOUTS", "VISUAL_AREAS"]

LAYOUTS = ("2020", "sdk", "2019")
VISUAL_AREAS = ("VISam", "VISpm", "VISp", "VISl", "VISal", "VISrl")


@dataclass(frozen=True)
class SynthSpec:
    """What to generate.

    Parameters
    ----------
    n_units : int
        Sorted clusters in ``/units`` (noise clusters included).
    duration : float
        Session length in seconds.
    n_probes : int
        Neuropixels probes (1–6), 384 channels each.
    seed : int
        Everything is a deterministic function of the seed and the sizes.
    layout : {"2020", "sdk", "2019"}
    session_id : int, optional
        Defaults to a number derived from the seed.
    mean_rate : float
        Mean firing rate (Hz) of the lognormal rate distribution.
    waveforms : bool
        Also write ``units/waveform_mean`` at real size (384 channels × 82 samples of
        float64 per unit: 0.7 GB for 2,800 units), as the released files hold it; for
        measuring what a streamed export leaves unread.
    optotagging : bool
        Write 96 light pulses (``processing/optotagging``), as optotagged sessions have.
    eye_tracking : bool
        Write eye tracking at 30 Hz (ellipse fits, raw and filtered gaze mapping, blinks)
        and the eye-tracking rig's metadata.
    lfp : bool
        Also write each probe's LFP file (``probe_<pid>_lfp.nwb`` beside the session
        file): 1,250 Hz over the whole session, with a flash-evoked response, and its CSD.
    lfp_channels : int
        LFP channels per probe (96 in the released files; fewer keeps test files small:
        96 channels over 9,600 s is about 4.6 GB per probe).
    tuned : bool
        Plant visual tuning in cortical and thalamic units (see
        :mod:`spikeprep.synthetic.tuning`), and write the truth beside the file
        (``<name>.truth.json``). Off: every unit fires at a stationary rate.
    """

    n_units: int = 300
    duration: float = 900.0
    n_probes: int = 3
    seed: int = 0
    layout: str = "2020"
    session_id: int | None = None
    mean_rate: float = 4.65
    waveforms: bool = False
    optotagging: bool = True
    eye_tracking: bool = True
    lfp: bool = False
    lfp_channels: int = 96
    tuned: bool = False

    @property
    def sid(self) -> int:
        return self.session_id if self.session_id is not None else 700_000_000 + 1009 * self.seed


def check_spec(spec: SynthSpec) -> None:
    """ValueError naming the first impossible setting of ``spec``."""
    if spec.layout not in LAYOUTS:
        raise ValueError(f"--layout must be one of {', '.join(LAYOUTS)}, not {spec.layout!r}")
    if not 1 <= spec.n_probes <= 6:
        raise ValueError(f"--probes must be between 1 and 6, got {spec.n_probes}")
    if not 1 <= spec.lfp_channels <= 384:
        raise ValueError(f"--lfp-channels must be between 1 and 384, got {spec.lfp_channels}")
    if spec.n_units < 1:
        raise ValueError(f"--units must be at least 1, got {spec.n_units}")
    if not (np.isfinite(spec.duration) and spec.duration >= 10.0):
        raise ValueError(f"--duration must be at least 10 s, got {spec.duration:g}")
