"""The session-folder contract: its layout and atomic publish, the registry of outputs
with their writers, readers and checks, the unit columns, Parquet tables, verify and the
legacy pickles.

May import: core, io, rates.
"""
