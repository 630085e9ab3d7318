"""Read a session file straight from the bucket: HTTP range requests behind a file
object that h5py opens, with a sparse on-disk block cache.

Only the bytes the reader touches are fetched (the tables, the metadata and
``units/spike_times``: about 37% of a released file; never ``spike_amplitudes`` or
``waveform_mean``). Every range is retried with backoff on 429/5xx (Retry-After
honoured), cut connections and stalls, resuming where the data stopped, and checked
(status 206, ``Content-Range``, length). Every response's ETag and Last-Modified must
match the first HEAD's: a file that changes mid-export fails the export. A server that
ignores Range is detected on the first request and the file is downloaded once instead.

Why a small file object of our own, on httpx, rather than fsspec's HTTP file or
remfile: it reuses the download code's retry policy (tenacity, Retry-After, bounded
attempts) and client, and it needs three things neither gives: a persistent sparse
block cache that survives a killed export (so a rerun fetches nothing twice), the
ETag/Last-Modified check on every response, and the fallback for servers that ignore
Range. fsspec's block caches live in memory and its retries do not cover stalls mid-body;
remfile caches on disk per chunk but does not validate responses against the file's
identity.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from ..core.errors import DownloadError
from .download import RemoteInfo, Retryable, check_status, download_file, remote_info, retrying
from .source import LocalFile, SourceInfo

__all__ = ["HttpSource", "HttpRangeFile", "BlockCache", "SourceChanged", "default_cache"]

log = logging.getLogger(__name__)

BLOCK = 1 << 16            # 64 KiB: the unit of caching; a large read wastes under two blocks
READAHEAD = 4              # blocks fetched for a read smaller than a block (HDF5 metadata)
MAX_REQUEST = 16 << 20     # one GET fetches at most this much


class SourceChanged(DownloadError):
    """The remote file changed while it was being read."""


class _RangeIgnored(Exception):
    """The server answered a Range request with the whole file."""


def default_cache() -> Path:
    """``~/.cache/spikeprep``."""
    return Path.home() / ".cache" / "spikeprep"


class BlockCache:
    """The blocks of one remote file that were fetched, in a sparse file on disk.

    ``folder`` holds ``blocks`` (a sparse file of the remote file's size), ``present.npy``
    (which blocks are in it) and ``meta.json`` (the file's URL, size and validators: a
    cache of another version of the file is discarded). The map is saved atomically, so
    after a kill the cache holds at least what the map says.
    """

    def __init__(self, folder: Path, url: str, info: RemoteInfo, block: int = BLOCK) -> None:
        self.folder, self.block, self.size = folder, block, info.size
        meta = {"url": url, "size": info.size, "etag": info.etag, "last_modified": info.last_modified, "block": block}
        folder.mkdir(parents=True, exist_ok=True)
        try:
            same = json.loads((folder / "meta.json").read_text()) == meta
        except (OSError, ValueError):
            same = False
        n_blocks = -(-info.size // block)
        if not same:
            for name in ("blocks", "present.npy"):
                (folder / name).unlink(missing_ok=True)
            (folder / "meta.json").write_text(json.dumps(meta))
        try:
            self.present = np.load(folder / "present.npy")
            if self.present.shape != (n_blocks,):
                raise ValueError("block map of another size")
        except (OSError, ValueError):
            self.present = np.zeros(n_blocks, dtype=bool)
        self._fd = os.open(folder / "blocks", os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self._fd).st_size != info.size:
            os.ftruncate(self._fd, info.size)  # sparse: holes until written

    def missing(self, first: int, last: int) -> list[tuple[int, int]]:
        """Runs ``[a, b)`` of blocks within ``first…last`` (inclusive) not yet cached."""
        gaps = ~self.present[first : last + 1]
        if not gaps.any():
            return []
        edges = np.flatnonzero(np.diff(np.concatenate([[0], gaps.astype(np.int8), [0]])))
        return [(first + int(a), first + int(b)) for a, b in zip(edges[::2], edges[1::2])]

    def write(self, offset: int, data: bytes | memoryview) -> None:
        os.pwrite(self._fd, data, offset)

    def mark(self, first: int, stop: int) -> None:
        """Blocks ``first:stop`` hold their data; the map is saved at once (a few kB), so
        a killed export keeps everything it had fetched."""
        self.present[first:stop] = True
        self.save()

    def save(self) -> None:
        tmp = self.folder / f".present.{os.getpid()}.npy"
        np.save(tmp, self.present)
        tmp.replace(self.folder / "present.npy")

    def readinto(self, offset: int, buffer: memoryview) -> None:
        done = 0
        while done < len(buffer):
            n = os.preadv(self._fd, [buffer[done:]], offset + done)
            if n <= 0:
                raise OSError(f"{self.folder / 'blocks'}: short read at {offset + done}")
            done += n

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class HttpRangeFile(io.RawIOBase):
    """A read-only, seekable file over HTTP range requests, for ``h5py.File``.

    Reads are served from a :class:`BlockCache`; missing blocks are fetched, a run of
    them per request (at most 16 MB), a few blocks ahead for small reads.
    """

    def __init__(self, source: "HttpSource") -> None:
        super().__init__()
        self._src = source
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._src.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._src.size - self._pos))
        if n:
            self._src.read_range(self._pos, view[:n])
            self._pos += n
        return n


class HttpSource:
    """A session file at an http(s) URL, read through range requests (a :class:`Source`).

    Parameters
    ----------
    url : str
    cache : path, optional
        Folder for the block cache (``<cache>/.ranges/<key>/``) and, for a server that
        ignores Range, the one full download. Default ``~/.cache/spikeprep``.
    timeout : float
        Connect and read timeout (s): a stalled response fails within it and is retried.
    attempts, max_wait : int, float
        Tries per range, and the longest pause between them (s).
    """

    def __init__(self, url: str, cache: str | Path | None = None, *, timeout: float = 30.0, attempts: int = 8,
                 max_wait: float = 30.0, block: int = BLOCK) -> None:
        self.url = url
        self.name = url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        self.cache_root = Path(cache) if cache else default_cache()
        self.timeout, self.attempts, self.max_wait, self.block = timeout, attempts, max_wait, block
        self.bytes_fetched = 0
        self.note: str | None = None
        self._client: httpx.Client | None = None
        self._remote: RemoteInfo | None = None
        self._cache: BlockCache | None = None
        self._local: LocalFile | None = None  # after a server ignored Range

    # ------------------------------------------------------------------ Source
    @property
    def location(self) -> str:
        return self.url

    @property
    def size(self) -> int:
        return self._head().size

    def info(self) -> SourceInfo:
        r = self._head()
        return SourceInfo(self.url, self.name, r.size, r.etag, r.last_modified, None, self.bytes_fetched, self.note)

    def open(self) -> Any:
        self._head()
        return self._local.open() if self._local else HttpRangeFile(self)

    def finish(self, keep_cache: bool = False) -> None:
        """After a successful (or skipped) export: remove the block cache, and the whole
        file a server that ignores Range made us download, unless asked to keep them."""
        if not keep_cache:
            self._block_cache_remove()
            if self._local is not None:
                self._local.path.unlink(missing_ok=True)
        self.close()

    def _block_cache_remove(self) -> None:
        if self._cache is not None:
            self._cache.remove()
            self._cache = None
        else:
            shutil.rmtree(self.cache_folder, ignore_errors=True)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def cache_folder(self) -> Path:
        key = hashlib.sha1(self.url.encode()).hexdigest()[:12]
        return self.cache_root / ".ranges" / f"{key}-{self.name}"

    # ------------------------------------------------------------------ HTTP
    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=httpx.Timeout(self.timeout), follow_redirects=True)
        return self._client

    def _head(self) -> RemoteInfo:
        if self._remote is None:
            try:
                self._remote = remote_info(self.client, self.url, attempts=min(self.attempts, 3),
                                           max_wait=self.max_wait)
            except (Retryable, httpx.HTTPError) as exc:
                raise DownloadError(f"{self.url}: {exc or type(exc).__name__}") from exc
        return self._remote

    def _block_cache(self) -> BlockCache:
        if self._cache is None:
            self._cache = BlockCache(self.cache_folder, self.url, self._head(), self.block)
        return self._cache

    def read_range(self, offset: int, out: memoryview) -> None:
        """Fill ``out`` with the bytes at ``offset``, fetching the blocks not cached yet."""
        if self._local is not None:
            with open(self._local.path, "rb") as f:
                f.seek(offset)
                f.readinto(out)
            return
        cache = self._block_cache()
        first, last = offset // self.block, (offset + len(out) - 1) // self.block
        if len(out) < self.block:  # small, scattered reads: take a few blocks ahead
            last = min(max(last, first + READAHEAD - 1), len(cache.present) - 1)
        try:
            for a, b in cache.missing(first, last):
                self._fetch_blocks(cache, a, b)
        except _RangeIgnored:
            self._fall_back_to_download()
            return self.read_range(offset, out)
        cache.readinto(offset, out)

    def _fetch_blocks(self, cache: BlockCache, a: int, b: int) -> None:
        """Fetch blocks ``a:b`` in requests of at most MAX_REQUEST bytes."""
        step = max(1, MAX_REQUEST // self.block)
        for lo in range(a, b, step):
            hi = min(b, lo + step)
            start, stop = lo * self.block, min(hi * self.block, self.size)
            self._fetch(cache, start, stop)
            cache.mark(lo, hi)

    def _fetch(self, cache: BlockCache, start: int, stop: int) -> None:
        """Bytes ``[start, stop)`` into the cache; each retry asks only for what is still missing."""
        arrived = [start]
        try:
            for attempt in retrying(self.attempts, self.max_wait):
                with attempt:
                    self._get(cache, arrived, stop)
        except (Retryable, httpx.HTTPError) as exc:
            raise DownloadError(f"{self.url}: bytes {start}-{stop - 1} failed after {self.attempts} attempts: "
                                f"{exc or type(exc).__name__}") from exc

    def _get(self, cache: BlockCache, arrived: list[int], stop: int) -> None:
        """One GET of ``[arrived[0], stop)``, moving ``arrived[0]`` on as bytes are written."""
        start = arrived[0]
        expected = f"bytes {start}-{stop - 1}/{self.size}"
        with self.client.stream("GET", self.url, headers={"Range": f"bytes={start}-{stop - 1}"}) as r:
            check_status(r, self.url)
            if r.status_code == 200:
                raise _RangeIgnored()
            self._check_same_file(r)
            if r.status_code != 206 or r.headers.get("content-range", "").strip() != expected:
                raise Retryable(f"asked for {expected}, got HTTP {r.status_code} "
                                f"Content-Range {r.headers.get('content-range')!r}")
            for chunk in r.iter_bytes(1 << 20):
                if arrived[0] + len(chunk) > stop:
                    raise Retryable(f"more bytes than asked for ({expected})")
                cache.write(arrived[0], chunk)
                arrived[0] += len(chunk)
                self.bytes_fetched += len(chunk)
        if arrived[0] < stop:
            raise Retryable(f"response ended at byte {arrived[0]} of {expected}")

    def _check_same_file(self, r: httpx.Response) -> None:
        head = self._head()
        for name, known in (("etag", head.etag), ("last-modified", head.last_modified)):
            now = r.headers.get(name)
            if known and now and now != known:
                raise SourceChanged(f"{self.url}: the file changed on the server during the export "
                                    f"({name} {known} -> {now}); nothing was published")

    def _fall_back_to_download(self) -> None:
        dest = self.cache_root / ".full" / self.name
        self.note = "the server ignored Range requests; the whole file was downloaded once"
        log.warning("%s: %s", self.url, self.note)
        before = dest.stat().st_size if dest.exists() else 0
        download_file(self.url, dest, client=self.client, attempts=self.attempts, max_wait=self.max_wait,
                      timeout=self.timeout)
        self.bytes_fetched += dest.stat().st_size - before
        if self._cache is not None:
            self._cache.remove()
            self._cache = None
        self._local = LocalFile(dest)
