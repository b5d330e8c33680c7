"""Taking a trigger request in: once per delivery, once per commit, then queued.

The order matters for what is lost. A delivery id is recorded before anything is
queued, so a replayed delivery never starts a second run; if queueing then fails,
both records are forgotten again and the answer is 503, so the forge (or a person
redelivering by hand) can try again. A commit already triggered is not queued
again by a webhook or the poller; ``POST /api/changes`` asks for a run explicitly
and always queues one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi.responses import JSONResponse

from farm.core.errors import FarmError
from farm.core.logs import event
from farm.core.trigger import TriggerRequest
from farm.server.answers import answer
from farm.store.deliveries import HEAD, head_key

log = logging.getLogger("farm.server")


class SeenKeys(Protocol):
    """The part of the results store that remembers what was acted on."""

    def first_time(self, source: str, key: str) -> bool: ...

    def forget(self, source: str, key: str) -> None: ...


@dataclass(frozen=True)
class Intake:
    seen: SeenKeys
    enqueue: Callable[[TriggerRequest], None]

    def first_delivery(self, source: str, delivery_id: str) -> bool:
        """Whether ``delivery_id`` is new ("" when the sender gave none: no guard)."""
        return not delivery_id or self.seen.first_time(source, delivery_id)

    def take(
        self, request: TriggerRequest, *, delivery_source: str = "", delivery_id: str = "",
        again: bool = False,
    ) -> JSONResponse:  # fmt: skip
        """Queue ``request`` unless its commit was triggered before (``again``: anyway)."""
        key = head_key(request.repository, request.commit_sha)
        new_head = self.seen.first_time(HEAD, key)
        if not new_head and not again:
            return answer(200, "ignored", f"commit {request.commit_sha[:12]} already triggered")
        try:
            self.enqueue(request)
        except (FarmError, OSError) as e:
            if new_head:
                self.seen.forget(HEAD, key)
            if delivery_id:
                self.seen.forget(delivery_source, delivery_id)
            event(
                log, "trigger.not_queued", level=logging.ERROR, repository=request.repository,
                error=str(e),
            )  # fmt: skip
            return answer(503, "unavailable", f"cannot queue the run: {e}")
        event(
            log, "trigger.queued", repository=request.repository, commit=request.commit_sha,
            source=request.source.value, delivery=request.delivery_id,
        )  # fmt: skip
        return answer(
            202,
            "queued",
            f"testing {request.repository} at {request.commit_sha[:12]}",
            repository=request.repository,
            commit_sha=request.commit_sha,
        )


__all__ = ["Intake", "SeenKeys"]
