"""The Redis key schema: every key farm writes, built through one helper.

All keys start with the settings' ``key_prefix`` (default ``farm:``), so that tests
and several farms can share one Redis server. Every key of a run carries a TTL
(``run_ttl_s``), so an abandoned run cleans itself up. Each key is built by the
:class:`Keys` method its row names, and nowhere else.

========  =================================================  ======  ======================
method    key                                                type    lifetime
========  =================================================  ======  ======================
events    ``{p}run:{run_id}:events``                         stream  run TTL
cancel    ``{p}run:{run_id}:cancel``                         string  run TTL
lease     ``{p}run:{run_id}:lease:{shard}``                  string  run TTL
claim     ``{p}run:{run_id}:lease:{shard}:claimed:{lease}``  string  run TTL
workers   ``{p}workers``                                     hash    none
snapshot  ``{p}snapshot:{digest}``                           hash    artifact TTL
upload    ``{p}snapshot:{digest}:upload:{token}``            hash    minutes
queue     ``{p}{queue}``                                     list    Celery's (kombu's)
========  =================================================  ======  ======================

``events``
    Workers append one entry per event (field ``m``: a JSON message from
    :mod:`farm.core.messages`): shard started, test result, shard ended. The
    scheduler reads it and trims what it has stored.
``cancel``
    Set to ``1`` when the run is cancelled; workers skip its shards and stop a shard
    that is running.
``lease``
    The shard's current lease, set when it is handed out again: a worker skips a
    redelivered task of an older one.
``claim``
    Set, only if absent, to the slot that first runs the shard under that lease:
    Celery redelivers at once the task of a slot that died, and the slot that gets
    it finds the claim and hands the shard back.
``workers``
    Field per worker name: a JSON :class:`farm.worker.registry.WorkerInfo`, announced
    again every few seconds and removed on a clean stop; an entry not seen for a
    while is a worker gone.
``snapshot``
    A code snapshot in 1 MiB chunks (see :mod:`farm.artifacts`); its TTL is
    refreshed by each run that uses it.
``upload``
    A snapshot being uploaded, whose expiry each batch pushes a few minutes ahead;
    renamed to its ``snapshot`` key once whole, so readers see all of it or none.
``queue``
    Celery's queue of shard tasks, written by kombu under ``global_keyprefix``
    (with kombu's ``unacked`` hash and index); a worker reads its length to know
    whether more work waits.

The database, not Redis, is the source of truth for what a run still owes.
"""

from __future__ import annotations

from dataclasses import dataclass

from farm.core import defaults


@dataclass(frozen=True)
class Keys:
    """Builds the keys of one farm (one prefix)."""

    prefix: str = defaults.KEY_PREFIX

    def _run(self, run_id: str, suffix: str) -> str:
        return f"{self.prefix}run:{run_id}:{suffix}"

    def events(self, run_id: str) -> str:
        return self._run(run_id, "events")

    def cancel(self, run_id: str) -> str:
        return self._run(run_id, "cancel")

    def lease(self, run_id: str, shard_id: int) -> str:
        return self._run(run_id, f"lease:{shard_id}")

    def claim(self, run_id: str, shard_id: int, lease: int) -> str:
        return f"{self.lease(run_id, shard_id)}:claimed:{lease}"

    def workers(self) -> str:
        return f"{self.prefix}workers"

    def snapshot(self, digest: str) -> str:
        return f"{self.prefix}snapshot:{digest}"

    def upload(self, digest: str, token: str) -> str:
        return f"{self.snapshot(digest)}:upload:{token}"

    def queue(self, name: str) -> str:
        """Kombu's list of the Celery queue ``name`` (kombu adds the prefix itself)."""
        return f"{self.prefix}{name}"
