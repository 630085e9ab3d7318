"""A real HTTP server on 127.0.0.1 serving a folder in the bucket layout, with faults.

Faults are queued per path and consumed one per GET: "503" (with Retry-After),
"500", "cut" (half the body, then the connection closes), "stall" (some bytes, then
silence longer than the client's read timeout), "ignore_range" (200 and the whole
body), "short" (a Content-Length larger than the body sent), "touch" (the file's
modification time moves on first: the file changed). ``ignore_ranges = True`` makes
every GET ignore Range. Bytes sent are counted.
Ranges ``bytes=a-`` and ``bytes=a-b`` are served from the file with a seek (large files
are never read whole), with an ETag and Last-Modified derived from the file's size and
modification time, so a file replaced on disk is a changed file.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Bucket:
    def __init__(self, root: Path, stall_seconds: float = 3.0, throttle: float = 0.0, port: int = 0) -> None:
        self.root = root
        self.faults: dict[str, deque[str]] = defaultdict(deque)
        self.sent: dict[str, int] = defaultdict(int)
        self.requests: list[tuple[str, str, str]] = []
        self.body_bytes: list[tuple[str, int]] = []  # (Range header, bytes sent) per GET
        self.stall_seconds = stall_seconds
        self.ignore_ranges = False
        self.throttle = throttle  # seconds per 64 KiB, to make transfers slow enough to kill
        self.lock = threading.Lock()
        bucket = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _file(self) -> Path | None:
                p = (bucket.root / self.path.lstrip("/").split("?")[0]).resolve()
                return p if p.is_file() and bucket.root.resolve() in p.parents else None

            def _validators(self, f: Path) -> None:
                st = f.stat()
                self.send_header("ETag", f'"{st.st_size:x}-{st.st_mtime_ns:x}"')
                self.send_header("Last-Modified", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(st.st_mtime)))

            def do_HEAD(self) -> None:
                bucket.requests.append(("HEAD", self.path, ""))
                f = self._file()
                if f is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(f.stat().st_size))
                self.send_header("Accept-Ranges", "bytes")
                self._validators(f)
                self.end_headers()

            def do_GET(self) -> None:
                rng = self.headers.get("Range", "")
                bucket.requests.append(("GET", self.path, rng))
                f = self._file()
                if f is None:
                    self.send_error(404)
                    return
                with bucket.lock:
                    fault = bucket.faults[self.path].popleft() if bucket.faults[self.path] else ""
                if fault in ("503", "500"):
                    self.send_response(int(fault))
                    if fault == "503":
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault == "touch":
                    st = f.stat()
                    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
                size = f.stat().st_size
                start, stop = 0, size
                if rng.startswith("bytes=") and fault != "ignore_range" and not bucket.ignore_ranges:
                    a, _, b = rng[6:].partition("-")
                    start, stop = int(a), min(size, int(b) + 1) if b else size
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
                else:
                    self.send_response(200)
                n = stop - start
                self.send_header("Content-Length", str(n + (100 if fault == "short" else 0)))
                self._validators(f)
                self.end_headers()
                if fault == "cut":
                    stop = start + n // 2
                elif fault == "stall":
                    self._send(f, start, start + n // 3, rng)
                    time.sleep(bucket.stall_seconds)
                    self.close_connection = True
                    return
                self._send(f, start, stop, rng)
                if fault in ("cut", "short"):
                    self.close_connection = True

            def _send(self, f: Path, start: int, stop: int, rng: str) -> None:
                step = 1 << 16 if bucket.throttle else 1 << 20
                sent = 0
                try:
                    with open(f, "rb") as fh:
                        fh.seek(start)
                        while sent < stop - start:
                            chunk = fh.read(min(step, stop - start - sent))
                            if not chunk:
                                break
                            self.wfile.write(chunk)
                            sent += len(chunk)
                            with bucket.lock:
                                bucket.sent[self.path] += len(chunk)
                            if bucket.throttle:
                                time.sleep(bucket.throttle)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                with bucket.lock:
                    bucket.body_bytes.append((rng, sent))

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Bucket":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
