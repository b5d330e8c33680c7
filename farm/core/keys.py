"""The Redis key schema: every key farm writes, built through one helper.

All keys start with the settings' ``key_prefix`` (default ``farm:``), so that tests
and several farms can share one Redis server. Every key of a run carries a TTL
(``run_ttl_s``), so an abandoned run cleans itself up.

=====================================  ======  =========================================
key                                    type    lifetime and meaning
=====================================  ======  =========================================
``{p}run:{run_id}:events``             stream  run TTL. Workers append one entry per
                                               event (field ``m``: a JSON message from
                                               :mod:`farm.core.messages`): shard started,
                                               test result, shard ended. The scheduler
                                               reads it and trims what it has stored.
``{p}run:{run_id}:cancel``             string  run TTL. Set to ``1`` when the run is
                                               cancelled; workers skip its shards and
                                               stop a shard that is running.
``{p}run:{run_id}:lease:{shard}``      string  run TTL. The shard's current lease, set
                                               when it is handed out again: a worker
                                               skips a redelivered task of an older one.
``{p}workers``                         hash    no TTL; field per worker name: a JSON
                                               :class:`farm.worker.registry.WorkerInfo`,
                                               re-announced every few seconds and
                                               removed on a clean stop; an entry not
                                               seen for a while is a worker gone.
``{p}snapshot:{digest}``               hash    artifact TTL, refreshed by each run that
                                               uses it: a code snapshot in 1 MiB chunks
                                               (see :mod:`farm.artifacts`).
``{p}{queue}`` (Celery)                list    Celery's queue of shard tasks, written by
                                               kombu under ``global_keyprefix``; also
                                               kombu's ``unacked`` hash and index.
=====================================  ======  =========================================

The database, not Redis, is the source of truth for what a run still owes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Builds the keys of one farm (one prefix)."""

    prefix: str = "farm:"

    def _run(self, run_id: str, suffix: str) -> str:
        return f"{self.prefix}run:{run_id}:{suffix}"

    def events(self, run_id: str) -> str:
        return self._run(run_id, "events")

    def cancel(self, run_id: str) -> str:
        return self._run(run_id, "cancel")

    def lease(self, run_id: str, shard_id: int) -> str:
        return self._run(run_id, f"lease:{shard_id}")

    def workers(self) -> str:
        return f"{self.prefix}workers"
