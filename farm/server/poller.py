"""Polling the configured repositories' branch heads, so no push goes untested.

GitHub never delivers a failed webhook again by itself, so a push made while the
server was down is a change nobody tests. With ``poll_interval_s`` set, the server
asks each repository for its branch heads (``git ls-remote``) every so often and
queues the heads it has not triggered yet; a head a webhook already triggered is
remembered by the intake and not queued twice. One step is :meth:`Poller.poll_once`;
the loop around it waits on an event, so stopping the server ends it at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from farm.core.errors import FarmError
from farm.core.logs import event
from farm.core.server_config import RepositoryConfig, ServerConfig
from farm.core.trigger import TriggerRequest, TriggerSource
from farm.server.intake import Intake

log = logging.getLogger("farm.server")

ListHeads = Callable[[RepositoryConfig], Mapping[str, str]]  # branch -> sha


@dataclass(frozen=True)
class Poller:
    config: ServerConfig
    list_heads: ListHeads
    intake: Intake

    def poll_once(self) -> int:
        """Queue every branch head not triggered before; how many were queued."""
        queued = 0
        for repository in self.config.repositories:
            try:
                heads = self.list_heads(repository)
            except FarmError as e:
                event(log, "poll.failed", level=logging.WARNING, repository=repository.name,
                      error=str(e))  # fmt: skip
                continue
            for branch, sha in sorted(heads.items()):
                try:
                    request = TriggerRequest(
                        repository=repository.name, commit_sha=sha.lower(),
                        source=TriggerSource.POLL, branch=branch,
                    )  # fmt: skip
                except FarmError:
                    continue  # a ref name the request cannot carry
                if self.intake.take(request).status_code == 202:
                    queued += 1
        return queued

    def run(self, stop: threading.Event) -> None:
        """Poll now and every ``poll_interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.poll_once()
            except FarmError as e:  # the store is away: try again next time
                event(log, "poll.failed", level=logging.WARNING, error=str(e))
            stop.wait(self.config.poll_interval_s)


__all__ = ["ListHeads", "Poller"]
