"""``spike_times.parquet``'s writer, a :class:`~spikeprep.core.model.SpikeSink` of the
export's one pass over the spike times (:func:`~spikeprep.core.model.spike_pass`), beside
the counts store (:class:`spikeprep.rates.writer.CountsWriter`). Each sink encodes on
threads of its own (Blosc and Arrow release the GIL), so reading and counting the next
block, the Zarr chunks and the Parquet row groups keep both cores busy.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..core.model import SpikeTrains

__all__ = ["SpikeTimesWriter", "SPIKE_TIMES_SCHEMA", "ROW_GROUP_ROWS"]

ROW_GROUP_ROWS = 1 << 20  # 16 MB of (unit_id, time) per row group


def _schema() -> Any:
    import pyarrow as pa

    # not nullable: no spike lacks either, and Parquet then stores no definition levels
    return pa.schema([pa.field("unit_id", pa.int64(), nullable=False,
                               metadata={"unit": "", "description": "Allen unit id"}),
                      pa.field("time", pa.float64(), nullable=False,
                               metadata={"unit": "s", "description": "spike time, session clock"})])


SPIKE_TIMES_SCHEMA = _schema()


class SpikeTimesWriter:
    """``spike_times.parquet``: the long table ``unit_id``, ``time``, grouped by unit, in row
    groups of :data:`ROW_GROUP_ROWS` spikes (the last one shorter), zstd-compressed, unit
    ids dictionary-encoded and times byte-stream-split.

    Row groups are encoded and written on a thread of their own while the next blocks
    are read; at most one batch waits for it.

    Parameters
    ----------
    path : path
        The file to create.
    batch_groups : int
        Row groups handed to the writing thread at once.
    """

    width = None

    def __init__(self, path: str | Path, *, batch_groups: int = 4) -> None:
        import pyarrow.parquet as pq

        self.path = Path(path)
        self.batch = batch_groups * ROW_GROUP_ROWS
        self._writer = pq.ParquetWriter(self.path, SPIKE_TIMES_SCHEMA, compression="zstd", use_dictionary=["unit_id"],
                                        column_encoding={"time": "BYTE_STREAM_SPLIT"})
        self._thread = ThreadPoolExecutor(max_workers=1)
        self._pending: Future | None = None
        self._ids: list[Any] = []  # pyarrow arrays
        self._times: list[Any] = []
        self._held = self.rows = 0

    def add(self, a: int, b: int, block: SpikeTrains) -> None:
        """Append units ``a:b``; hand full batches of row groups to the writing thread."""
        import pyarrow as pa

        self._ids.append(pa.array(np.repeat(block.unit_ids, block.n_spikes)))
        self._times.append(pa.array(block.times))
        self._held += len(block.times)
        if self._held >= self.batch:
            self._flush(self._held - self._held % ROW_GROUP_ROWS)

    def _flush(self, n: int) -> None:
        """Write the first ``n`` rows held (the rest stays for the next batch). The
        pieces are chained, not copied (Arrow encodes a chunked column as one)."""
        import pyarrow as pa

        table = pa.table({"unit_id": pa.chunked_array(self._ids, pa.int64()),
                          "time": pa.chunked_array(self._times, pa.float64())}, schema=SPIKE_TIMES_SCHEMA)
        rest = table.slice(n)
        self._ids, self._times, self._held = rest["unit_id"].chunks, rest["time"].chunks, rest.num_rows
        if self._pending is not None:
            self._pending.result()
        self._pending = self._thread.submit(self._writer.write_table, table.slice(0, n), row_group_size=ROW_GROUP_ROWS)
        self.rows += n

    def close(self) -> dict[str, Any]:
        """Write what is held and close the file; ``{"rows": n}``."""
        if self._held:
            self._flush(self._held)
        if self._pending is not None:
            self._pending.result()
        self._thread.shutdown()
        self._writer.close()
        return {"rows": self.rows}

    def abort(self) -> None:
        """Stop and remove the file."""
        if self._pending is not None:
            self._pending.exception()
        self._thread.shutdown()
        try:
            self._writer.close()
        finally:
            self.path.unlink(missing_ok=True)
