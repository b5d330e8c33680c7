"""Broker URLs, the Celery configuration both sides share, and a fast reachability check.

Celery (kombu) spells a Redis unix socket ``redis+socket:///path``; redis-py spells it
``unix:///path``. farm accepts either and hands each library its own spelling.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis

from farm.core import defaults
from farm.core.errors import BrokerUnavailable, SettingsError
from farm.core.urls import mask_url

_SCHEMES = ("redis", "rediss", "unix", "redis+socket")


def check_scheme(url: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in _SCHEMES:
        raise SettingsError(
            f"broker URL {mask_url(url)} is not a Redis URL (expected one of {', '.join(_SCHEMES)})"
        )


def celery_url(url: str) -> str:
    """The URL in kombu's spelling."""
    check_scheme(url)
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://") :]
    return url


def redis_py_url(url: str) -> str:
    """The URL in redis-py's spelling."""
    check_scheme(url)
    if url.startswith("redis+socket://"):
        return "unix://" + url[len("redis+socket://") :]
    return url


def connect(url: str, *, timeout_s: float = defaults.BROKER_TIMEOUT_S) -> redis.Redis:
    """A redis-py client that has answered a PING, or :class:`BrokerUnavailable`."""
    client: redis.Redis = redis.Redis.from_url(
        redis_py_url(url),
        socket_connect_timeout=timeout_s,
        socket_timeout=max(timeout_s, 30.0),
        health_check_interval=30,
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as e:
        client.close()
        raise BrokerUnavailable(f"broker {mask_url(url)} does not answer: {e}") from e
    return client


def celery_config(url: str, *, key_prefix: str, queue: str) -> dict[str, Any]:
    """Celery settings shared by the dispatching scheduler and every worker.

    JSON only, so a pickled message is refused rather than executed. Late acks with
    prefetch 1: a worker holds one shard at a time and a shard whose worker dies is
    delivered again.
    """
    return {
        "broker_url": celery_url(url),
        "broker_transport_options": {"global_keyprefix": key_prefix},
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "event_serializer": "json",
        "result_accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": queue,
        "task_create_missing_queues": True,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "worker_enable_remote_control": False,
    }
