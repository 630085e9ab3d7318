"""Views over exported folders: AllenSDK's session API (``ExportedSession``), alignment
kernels and aligned stores, rate summaries, other tools (pynapple).

May import: core, io, rates, export. Reads exported folders, never the session NWB.
"""
