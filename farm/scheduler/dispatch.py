"""Dispatch: one Celery task per shard, sent by name in plan order (longest first).

The scheduler holds a Celery app of its own with the shared configuration
(:func:`farm.core.broker.celery_config`) and never imports worker code.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from farm.core.broker import celery_config
from farm.core.shard_task import TASK_NAME, ShardTask


class Dispatcher:
    """Sends shard tasks to the queue that workers of this farm consume."""

    def __init__(self, broker_url: str, *, key_prefix: str, queue: str) -> None:
        self.queue = queue
        self.app = Celery("farm-scheduler")
        self.app.conf.update(celery_config(broker_url, key_prefix=key_prefix, queue=queue))

    def send(self, tasks: Sequence[ShardTask]) -> None:
        # One producer and connection for the whole plan: the queue is FIFO, so the
        # order of these calls is the order workers take the shards.
        with self.app.producer_or_acquire() as producer:
            for task in tasks:
                self.app.send_task(
                    TASK_NAME, args=[task.to_json()], queue=self.queue, producer=producer
                )

    def close(self) -> None:
        self.app.close()
