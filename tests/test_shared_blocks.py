"""Blocks of the file check shared between threads: every block once, errors in block order."""

from __future__ import annotations

import threading
import time

import pytest

from spikeprep.io.shared_blocks import SharedBlocks


def _owner_and_helper(blocks: SharedBlocks, n: int, work) -> tuple[list, BaseException | None]:
    out: dict = {}

    def owner() -> None:
        try:
            blocks.publish(n, work)
            blocks.run()
            out["results"] = blocks.results()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc
        finally:
            blocks.close()

    t = threading.Thread(target=owner)
    t.start()
    blocks.join()
    t.join(timeout=30)
    assert not t.is_alive()
    return out.get("results", []), out.get("error")


def test_every_block_once_with_each_threads_scratch() -> None:
    seen: list[tuple[int, str]] = []

    def work(k: int, scratch: dict) -> int:
        scratch.setdefault("thread", threading.current_thread().name)
        assert scratch["thread"] == threading.current_thread().name
        seen.append((k, scratch["thread"]))
        time.sleep(0.002)
        return k * k

    results, error = _owner_and_helper(SharedBlocks(), 200, work)
    assert error is None and results == [k * k for k in range(200)]
    assert sorted(k for k, _ in seen) == list(range(200))
    assert len({name for _, name in seen}) == 2  # both threads took blocks


def test_the_first_failed_block_is_raised_whichever_thread_failed_first() -> None:
    def work(k: int, scratch: dict) -> int:
        if k in (3, 4):
            time.sleep(0.05 if k == 3 else 0.0)  # block 4 fails first
            raise ValueError(f"block {k}")
        return k

    for _ in range(5):
        results, error = _owner_and_helper(SharedBlocks(), 50, work)
        assert isinstance(error, ValueError) and str(error) == "block 3"


def test_a_helper_does_not_wait_for_work_that_never_comes() -> None:
    blocks = SharedBlocks()
    threading.Timer(0.05, blocks.close).start()
    blocks.join()  # returns once closed


def test_results_wait_for_the_block_a_helper_is_computing() -> None:
    started = threading.Event()

    def work(k: int, scratch: dict) -> int:
        if k == 1:
            started.set()
            time.sleep(0.2)
        else:
            started.wait(5)
        return k

    results, error = _owner_and_helper(SharedBlocks(), 2, work)
    assert error is None and results == [0, 1]


@pytest.mark.parametrize("n", [0, 1])
def test_no_or_one_block(n: int) -> None:
    results, error = _owner_and_helper(SharedBlocks(), n, lambda k, s: k)
    assert error is None and results == list(range(n))
