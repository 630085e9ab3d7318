"""Reading Allen NWB files and where they come from: sources (local file, HTTP range
file with its block cache), downloads, the bucket catalog and the h5py reader.

May import: core. The reader takes a :class:`~spikeprep.io.source.Source` and knows
nothing of HTTP; paths and URLs become sources at the entry points (``open_source``).
"""
