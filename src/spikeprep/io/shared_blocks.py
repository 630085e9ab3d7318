"""Numbered blocks of work that several threads take in turn: the file check of
:class:`spikeprep.io.nwb.SpikeReader`, which the thread that read the other tables joins
once they are read (:func:`spikeprep.io.nwb._scan_beside_tables`).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

__all__ = ["SharedBlocks"]


class SharedBlocks:
    """Blocks ``0 … n − 1`` handed out in order to every thread that calls :meth:`run`.

    The owner :meth:`publish` es the work, runs it and collects :meth:`results`; helpers
    call :meth:`join`, which waits until the work is published (or :meth:`close` says it
    never will be) and then takes blocks too. After an error no block is handed out, and
    :meth:`results` raises the error of the first failed block, so errors come in block
    order as they would on one thread.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._work: Callable[[int, dict[str, Any]], Any] | None = None
        self._n = self._next = self._running = 0
        self._closed = self._failed = False
        self._results: list[Any] = []
        self._errors: dict[int, BaseException] = {}

    def publish(self, n: int, work: Callable[[int, dict[str, Any]], Any]) -> None:
        """``work(k, scratch)`` computes block ``k``; ``scratch`` is a dict of the calling
        thread's own (for buffers reused from block to block)."""
        with self._cond:
            self._work, self._n, self._results = work, n, [None] * n
            self._cond.notify_all()

    def close(self) -> None:
        """No work will be published after this (the owner is done, or failed before)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def join(self) -> None:
        """Help: wait for the work, then take blocks until none is left."""
        with self._cond:
            self._cond.wait_for(lambda: self._work is not None or self._closed)
        if self._work is not None:
            self.run()

    def run(self) -> None:
        """Take and compute blocks until none is left (or one failed)."""
        scratch: dict[str, Any] = {}
        while True:
            with self._cond:
                if self._failed or self._next >= self._n:
                    return
                k, self._next, self._running = self._next, self._next + 1, self._running + 1
            try:
                self._results[k] = self._work(k, scratch)  # type: ignore[misc]
            except BaseException as exc:
                with self._cond:
                    self._errors[k], self._failed = exc, True
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()

    def results(self) -> list[Any]:
        """Every block's result, once no block is being computed; the first failed
        block's error instead."""
        with self._cond:
            self._cond.wait_for(lambda: self._running == 0)
            if self._errors:
                raise self._errors[min(self._errors)]
            return list(self._results)
