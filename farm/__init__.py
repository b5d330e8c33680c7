"""farm: a distributed test-execution farm for pytest.

Packages: ``farm`` (settings, CLI, results store, verdict, reports), ``scheduler``
(collect, estimate, plan, dispatch, ingest), ``worker`` (Celery app, shard task,
pytest runner and plugin).
"""

__version__ = "0.1.0"
