"""Gathers what a shard's test processes measured under pytest-cov, for one event.

Trusted code in the runner (:mod:`farm.worker.runner`). Each test process of a run
that measures coverage has a folder of its own (:mod:`farm.worker.spawn`); the
process writes its merged data to a file there as its session ends
(:mod:`farm.worker.coverage_capture`). After the process's ``F`` line the relay reads
that file, refusing more than the shard's limit in all, and removes the folder; a
process that crashed or was stopped at a time limit saved nothing, and the relay
says so. At the end of the shard its :class:`~farm.core.messages.ShardCoverage`
event carries every part, in base64 inside the JSON of the stream.
"""

from __future__ import annotations

import base64

from farm.core import defaults
from farm.core.messages import ShardCoverage
from farm.core.shard_task import ShardTask
from farm.worker.coverage_capture import CaptureError, read_capture
from farm.worker.spawn import TestProcess

CAPTURE_NAME = "farm-coverage"  # in the process's folder, beside pytest-cov's own files


def capture_path(test: TestProcess) -> str:
    """Where the test process writes its merged data ("" when it measures none)."""
    return f"{test.coverage_dir}/{CAPTURE_NAME}" if test.coverage_dir else ""


class CoverageRelay:
    """The coverage data of one shard's test processes, and what is missing of it."""

    def __init__(self, limit_bytes: int = defaults.COVERAGE_LIMIT_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self.parts: list[str] = []
        self.platforms: list[str] = []
        self.missing: list[str] = []
        self.size_bytes = 0

    def gather(self, test: TestProcess) -> None:
        """Take the data of ``test``, whose session ended normally, and remove its folder."""
        if not test.coverage_dir:
            return
        try:
            header, data = read_capture(capture_path(test), self.limit_bytes - self.size_bytes)
        except CaptureError as e:
            self.missing.append(f"{e} (pid {test.process.pid})")
            return
        finally:
            test.remove_coverage_dir()
        platform, error = header.get("platform"), header.get("error")
        if isinstance(platform, str) and platform not in self.platforms:
            self.platforms.append(platform)
        if error:
            self.missing.append(str(error))
        elif data:
            self.size_bytes += len(data)
            self.parts.append(base64.b64encode(data).decode("ascii"))

    def lose(self, test: TestProcess, why: str) -> None:
        """``test`` ended before saving its data (``why``); its folder goes too."""
        if test.coverage_dir:
            self.missing.append(why)
            test.remove_coverage_dir()

    def event(self, task: ShardTask, worker: str, root: str) -> ShardCoverage:
        """The shard's coverage event; ``root`` is the tree its paths are under."""
        missing = "; ".join(dict.fromkeys(self.missing))
        return ShardCoverage(
            task.run_id,
            task.shard_id,
            task.lease,
            worker,
            root,
            tuple(self.parts),
            tuple(self.platforms),
            missing,
        )
