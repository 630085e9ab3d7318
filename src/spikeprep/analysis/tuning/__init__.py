"""AllenSDK's stimulus analyses (``allensdk.brain_observatory.ecephys.stimulus_analysis``)
over exported sessions: the same class names, metric columns and values.

``kernels`` holds the formulas (numpy in, numpy out), ``base`` the shared per-unit
quantities (condition statistics, trial counts, PSTHs at the preferred condition),
``classes`` the gratings, scenes, flashes, movies and dot-motion analyses, ``rf`` the
receptive-field mapping, and ``columns`` each class's declared metric columns.
"""

from .classes import DotMotion, DriftingGratings, Flashes, NaturalMovies, NaturalScenes, StaticGratings
from .rf import ReceptiveFieldMapping

__all__ = ["ReceptiveFieldMapping", "DriftingGratings", "StaticGratings", "NaturalScenes", "Flashes",
           "NaturalMovies", "DotMotion", "ANALYSES"]

ANALYSES = (ReceptiveFieldMapping, DriftingGratings, StaticGratings, NaturalScenes, Flashes, DotMotion, NaturalMovies)
