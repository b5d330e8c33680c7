"""The scheduler side of farm: collect, estimate, plan, dispatch, supervise, ingest.

Planning modules (estimate, plan, strategies) are pure: no Celery, Redis or database.
Shards are sent to workers by task name; no worker code is imported here.
"""
