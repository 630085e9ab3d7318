"""Spike counts and firing rates: the time grid and exact counts, Gaussian kernels, the
compiled smoothing, the counts store (Zarr) and its chunk decoding.

May import: core. Numpy in, numpy out; ``store`` puts Zarr and xarray around it.
"""
