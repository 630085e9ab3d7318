"""The bottom layer: the in-memory session model, errors, export parameters and their
defaults, the stimulus-table rules and brain anatomy (areas, cortical layers).

May import: nothing else from spikeprep.
"""
