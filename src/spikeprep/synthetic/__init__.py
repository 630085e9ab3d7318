"""Synthetic sessions in the exact Allen NWB layout, at any scale, deterministic per seed:
the spec, the session writer and the bucket writer (catalog CSVs beside the files).

May import: core, io (to read back what it wrote).
"""

from .bucket import write_bucket
from .spec import LAYOUTS, VISUAL_AREAS, SynthSpec, check_spec
from .writer import write_session

__all__ = ["write_session", "write_bucket", "check_spec", "SynthSpec", "LAYOUTS", "VISUAL_AREAS"]
