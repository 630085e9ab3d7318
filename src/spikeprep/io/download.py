"""HTTP downloads from the Allen bucket (or a mirror): resumable, verified, atomic.

Each file is written to a side ``<name>.part`` file, resumed with HTTP Range requests,
retried with exponential backoff and jitter on connection errors, timeouts, 429 and
5xx (honouring Retry-After), checked against the server's size (and MD5 when the ETag
is a plain MD5), and renamed into place. A lock keeps two processes from writing the
same file. A partial file never sits at the final path.

Libraries: httpx (timeouts, streaming), tenacity (retry policy), filelock (the lock),
tqdm (progress).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

from ..core.errors import DownloadError

__all__ = ["DEFAULT_BASE_URL", "BASE_URL_ENV", "base_url", "RemoteInfo", "remote_info", "download_file",
           "session_nwb_path", "session_url", "DownloadError", "Retryable", "retrying", "check_status"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = ("https://allen-brain-observatory.s3.us-west-2.amazonaws.com/"
                    "visual-coding-neuropixels/ecephys-cache/")
BASE_URL_ENV = "SPIKEPREP_BASE_URL"
_CHUNK = 1 << 20
_MD5_ETAG = re.compile(r'^"?([0-9a-fA-F]{32})"?$')
_RETRY_STATUS = {429, 500, 502, 503, 504}


def base_url(url: str | None = None) -> str:
    """The bucket to use: ``url``, else ``$SPIKEPREP_BASE_URL``, else Allen's; ends with '/'."""
    url = url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


def session_nwb_path(cache: str | Path, session_id: int) -> Path:
    """Where a session file lives in an AllenSDK-layout cache folder."""
    return Path(cache) / f"session_{session_id}" / f"session_{session_id}.nwb"


def session_url(session_id: int, url: str | None = None) -> str:
    return f"{base_url(url)}session_{session_id}/session_{session_id}.nwb"


class Retryable(Exception):
    """A failure worth another attempt; ``retry_after`` in seconds when the server said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RemoteInfo:
    """What a HEAD says of a remote file: its size, its MD5 when the ETag is a plain one,
    and the validators (ETag, Last-Modified) that change when the file does."""

    size: int
    md5: str | None
    etag: str | None = None
    last_modified: str | None = None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def check_status(response: httpx.Response, url: str) -> None:
    if response.status_code in _RETRY_STATUS:
        raise Retryable(f"HTTP {response.status_code}", _retry_after(response))
    if response.status_code >= 400:
        raise DownloadError(f"{url}: HTTP {response.status_code} {response.reason_phrase}")


_CONNECT_ATTEMPTS = 2  # a refused connection or an unknown host is not worth a minute of retries


def retrying(attempts: int, max_wait: float) -> Retrying:
    """The retry policy of every request: ``attempts`` tries with exponential backoff and
    jitter (Retry-After honoured, capped by ``max_wait``) on 429/5xx, cut connections and
    timeouts; a connection that cannot be made at all is tried twice only."""
    backoff = wait_exponential(multiplier=0.5, max=max_wait) + wait_random(0, 0.5)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, max_wait)
        return backoff(state)

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.info("attempt %d failed (%s); retrying", state.attempt_number, exc)

    def unreachable(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        return isinstance(exc, httpx.ConnectError) and state.attempt_number >= _CONNECT_ATTEMPTS

    transient = (Retryable, httpx.TimeoutException, httpx.TransportError)
    return Retrying(stop=stop_after_attempt(attempts) | unreachable, wait=wait, reraise=True,
                    retry=retry_if_exception(lambda e: isinstance(e, transient)), before_sleep=log_retry)


def remote_info(client: httpx.Client, url: str, *, attempts: int = 5, max_wait: float = 30.0) -> RemoteInfo:
    """Size (and MD5 when the ETag is one) of a remote file, via HEAD."""
    for attempt in retrying(attempts, max_wait):
        with attempt:
            r = client.head(url)
            check_status(r, url)
            if "content-length" not in r.headers:
                raise DownloadError(f"{url}: the server gives no Content-Length")
            m = _MD5_ETAG.match(r.headers.get("etag", ""))
            return RemoteInfo(int(r.headers["content-length"]), m.group(1).lower() if m else None,
                              r.headers.get("etag"), r.headers.get("last-modified"))
    raise AssertionError("unreachable")


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK * 8), b""):
            h.update(block)
    return h.hexdigest()


def _fetch_range(client: httpx.Client, url: str, part: Path, total: int, progress: Callable[[int], None]) -> None:
    """One attempt: append to ``part`` from its current size (restart when Range is ignored)."""
    offset = part.stat().st_size if part.exists() else 0
    if offset > total:
        part.unlink()
        offset = 0
    if offset == total:
        return
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with client.stream("GET", url, headers=headers) as r:
        check_status(r, url)
        if offset and r.status_code == 200:  # Range ignored: start over
            log.info("%s: server ignored Range; restarting", url)
            offset = 0
            progress(-part.stat().st_size)
        elif offset and r.status_code == 206:
            start = r.headers.get("content-range", "").split(" ")[-1].split("-")[0]
            if start != str(offset):
                raise Retryable(f"server resumed at {start!r}, asked for {offset}")
        with open(part, "r+b" if offset else "wb") as f:
            f.seek(offset)
            f.truncate()
            for chunk in r.iter_bytes():  # as it arrives: nothing buffered is lost on a cut
                f.write(chunk)
                progress(len(chunk))
            f.flush()
            os.fsync(f.fileno())
    size = part.stat().st_size
    if size < total:
        raise Retryable(f"connection ended at {size} of {total} bytes")
    if size > total:
        part.unlink()
        raise Retryable(f"received {size} bytes, the server announced {total}")


def download_file(url: str, dest: str | Path, *, client: httpx.Client | None = None, attempts: int = 8,
                  max_wait: float = 30.0, timeout: float = 30.0, progress: bool = False,
                  lock_timeout: float = -1) -> Path:
    """Download ``url`` to ``dest`` (resuming a ``.part`` file) and verify it.

    Parameters
    ----------
    url : str
    dest : path
        Final path; a complete file of the right size already there is kept as is.
    client : httpx.Client, optional
        Reused across files; one with ``timeout`` is made otherwise.
    attempts : int
        Tries per file (each resumes where the last one stopped).
    max_wait : float
        Longest pause between tries (s), also the cap on Retry-After.
    timeout : float
        Connect and read timeout (s): a stalled transfer fails within it and is retried.
    progress : bool
        Show a byte progress bar.
    lock_timeout : float
        Seconds to wait for another process writing the same file (-1: wait for it).

    Raises
    ------
    DownloadError
        After the last attempt, on an HTTP error, when the disk is too small, or when
        the file does not verify. The message names the URL and the problem.
    """
    from filelock import FileLock, Timeout
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    own = client is None
    client = client or httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True)
    try:
        with FileLock(str(dest) + ".lock", timeout=lock_timeout):
            try:
                # a file already here only needs its size checked: don't wait long for an absent server
                head_attempts = min(attempts, 3) if dest.exists() else attempts
                info = remote_info(client, url, attempts=head_attempts, max_wait=max_wait)
            except (Retryable, httpx.HTTPError) as exc:
                raise DownloadError(f"{url}: {exc}") from exc
            if dest.exists():
                if dest.stat().st_size == info.size:
                    return dest
                log.warning("%s: %d bytes on disk, %d on the server; resuming", dest, dest.stat().st_size, info.size)
                if not part.exists() or part.stat().st_size < dest.stat().st_size:
                    dest.replace(part)
                else:
                    dest.unlink()
            have = part.stat().st_size if part.exists() else 0
            free = shutil.disk_usage(dest.parent).free
            if info.size - have > free:
                raise DownloadError(f"{dest}: needs {(info.size - have) / 1e9:.2f} GB, "
                                    f"{free / 1e9:.2f} GB free on {dest.parent}")
            bar = tqdm(total=info.size, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=dest.name, disable=None if progress else True, leave=False)
            try:
                _download_verified(client, url, part, info, attempts, max_wait, bar.update)
            finally:
                bar.close()
            part.replace(dest)
            return dest
    except Timeout as exc:
        raise DownloadError(f"{dest}: another process holds its lock") from exc
    finally:
        if own:
            client.close()


def _download_verified(client: httpx.Client, url: str, part: Path, info: RemoteInfo, attempts: int,
                       max_wait: float, progress: Callable[[int], None]) -> None:
    for tries in (1, 2):  # a second full try when the checksum fails
        try:
            for attempt in retrying(attempts, max_wait):
                with attempt:
                    _fetch_range(client, url, part, info.size, progress)
        except (Retryable, httpx.HTTPError) as exc:
            raise DownloadError(f"{url}: failed after {attempts} attempts: {exc or type(exc).__name__}") from exc
        except OSError as exc:
            raise DownloadError(f"{part}: cannot write: {exc.strerror or exc}") from exc
        if info.md5 is None or _md5(part) == info.md5:
            return
        part.unlink()
        if tries == 2:
            raise DownloadError(f"{url}: MD5 of the download does not match the server's ETag")
        log.warning("%s: MD5 mismatch; downloading again", url)
