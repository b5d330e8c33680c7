"""The worker side of farm: the Celery app and shard task, the pytest runner and plugin.

Workers talk only to Redis, never to the results database.
"""
