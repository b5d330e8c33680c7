"""``farm serve`` (webhooks, the changes API, polling, conductors) and ``farm conductor``.

``farm serve --config FILE --broker URL [--db URL]`` checks the configuration, the
broker and the database before it listens, starts ``--conductors N`` conductors as
its children (0: they run elsewhere, ``farm conductor``), polls when the
configuration says so, and serves until SIGINT or SIGTERM; its children end with it
however it ends.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from farm.cli.options import common_options, settings_from
from farm.core import defaults
from farm.core.errors import SettingsError, UsageError
from farm.core.server_config import SERVER_CONFIG_ENV, ServerConfig, load_server_config
from farm.core.settings import Settings

if TYPE_CHECKING:
    import redis

    from farm.server.metrics import MetricsReaders
    from farm.store import ResultStore

_CONFIG_HELP = f"The server's TOML configuration [{SERVER_CONFIG_ENV}]."
_TEST_USER_HELP = "User a checkout's code is collected as, or self [nobody when run as root]."


# What the server and its conductors import beyond farm's own dependencies.
SERVER_MODULES = (
    "fastapi", "uvicorn", "httpx", "jwt", "cryptography", "prometheus_client", "itsdangerous",
)  # fmt: skip


def require_server_extra(find: Callable[[str], object | None] = importlib.util.find_spec) -> None:
    """A UsageError, before any work, when the ``server`` extra is not installed."""
    missing = [name for name in SERVER_MODULES if find(name) is None]
    if missing:
        raise UsageError(
            f"farm serve needs the server extra ({', '.join(missing)} missing): "
            "pip install 'pytest-farm[server]'"
        )


def _config(path: str | None) -> tuple[Path, ServerConfig]:
    chosen = path or os.environ.get(SERVER_CONFIG_ENV)
    if not chosen:
        raise SettingsError(
            f"give the server's configuration: --config FILE or {SERVER_CONFIG_ENV}"
        )
    return Path(chosen), load_server_config(Path(chosen))


def _farm_settings(flags: dict[str, Any]) -> Settings:
    settings = settings_from(**flags)
    if not settings.broker_url:
        raise SettingsError("the server needs the farm's broker: --broker URL or FARM_BROKER_URL")
    from farm.core.test_user import resolve_test_user

    resolve_test_user(settings.test_user, euid=os.geteuid())  # an unknown user: now, in one line
    return settings


@click.command()
@click.option("--config", "config_path", help=_CONFIG_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--conductors", type=click.IntRange(min=0), default=defaults.CONDUCTORS, show_default=True,
    help="Runs conducted at once by this server (0: by `farm conductor` elsewhere).",
)  # fmt: skip
@click.option("--broker", "broker_url", help="Redis URL of the farm [FARM_BROKER_URL].")
@click.option("--test-user", help=_TEST_USER_HELP)
@common_options
def serve(config_path: str | None, host: str, port: int, conductors: int, **flags: Any) -> None:
    """Take webhooks and API calls, and run the changes they name on the farm."""
    require_server_extra()
    path, config = _config(config_path)
    settings = _farm_settings(flags)
    from farm.core.broker import connect
    from farm.core.logs import configure

    configure(level=logging.INFO)
    connect(settings.broker_url or "", timeout_s=settings.broker_timeout_s).close()
    import uvicorn

    from farm.run.conductor import ChangeQueue, Conductors
    from farm.run.mirror import remote_heads
    from farm.server.app import ServerParts, create_app
    from farm.server.intake import Intake
    from farm.server.poller import Poller

    store, metrics, broker = _metrics_readers(settings)
    queue = ChangeQueue(settings)
    children = None
    stop = threading.Event()
    try:
        if conductors:
            log_path = settings.state_dir.resolve() / "conductors.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            children = Conductors(
                concurrency=conductors, config_path=path, env=_child_env(settings),
                log_path=log_path,
            )  # fmt: skip
            children.start()
        app = create_app(
            ServerParts(
                config,
                store.deliveries,
                queue.send,
                metrics,
                live_workers=metrics.live_workers,
                store=store,
            )
        )
        if config.poll_interval_s > 0:
            poller = Poller(
                config,
                lambda repository: remote_heads(repository.url, token=repository.token),
                Intake(store.deliveries, queue.send),
            )
            threading.Thread(target=poller.run, args=(stop,), name="farm-poll", daemon=True).start()
        click.echo(f"farm serve: listening on http://{host}:{port}", err=True)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        stop.set()
        if children is not None:
            children.stop()
        queue.close()
        broker.close()
        store.close()


def _metrics_readers(settings: Settings) -> tuple[ResultStore, MetricsReaders, redis.Redis]:
    """The store (migrated now, not per request), what /metrics reads, and its broker
    client; the store's engine is shared, so a scrape takes no connections of its own."""
    from farm.core.broker import connect
    from farm.core.keys import Keys
    from farm.server.metrics import farm_readers
    from farm.store import ResultStore
    from farm.store.connection import StoreConnection
    from farm.store.connection import connect as open_engine
    from farm.store.urls import mask_url

    broker = connect(settings.broker_url or "", timeout_s=settings.broker_timeout_s)
    url = settings.database_url_or_default
    engine = open_engine(url)
    store = ResultStore(engine, display_url=mask_url(url))
    readers = farm_readers(
        broker, Keys(settings.key_prefix), settings.queue,
        StoreConnection(engine, display_url=mask_url(url)),
    )  # fmt: skip
    return store, readers, broker


@click.command()
@click.option("--config", "config_path", help=_CONFIG_HELP)
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=defaults.CONDUCTORS,
              show_default=True, help="Runs conducted at once.")  # fmt: skip
@click.option("--broker", "broker_url", help="Redis URL of the farm [FARM_BROKER_URL].")
@click.option("--test-user", help=_TEST_USER_HELP)
@click.option("--local", is_flag=True, hidden=True)
@common_options
def conductor(config_path: str | None, concurrency: int, local: bool, **flags: Any) -> None:
    """Run the changes the server queues: fetch, run on the farm, report the verdict."""
    if local:
        from farm.core.lifeline import watch_lifeline

        watch_lifeline(os.environ)  # first: the server may die while this boots
    require_server_extra()
    _, config = _config(config_path)
    settings = _farm_settings(flags)
    from farm.core.broker import connect
    from farm.core.logs import configure

    configure(level=logging.INFO)
    connect(settings.broker_url or "", timeout_s=settings.broker_timeout_s).close()
    from farm.core.trigger import changes_queue
    from farm.run.conductor import make_conductor_app

    app = make_conductor_app(settings, config)
    app.worker_main(
        [
            "worker", "--concurrency", str(concurrency), "--queues", changes_queue(settings.queue),
            "--hostname", f"farm-conductor@{os.uname().nodename}-{os.getpid()}",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
        ]
    )  # fmt: skip


def _child_env(settings: Settings) -> dict[str, str]:
    """The conductors' environment: this one, with the settings that reach them."""
    env = dict(os.environ)
    env["FARM_BROKER_URL"] = settings.broker_url or ""
    env["FARM_DATABASE_URL"] = settings.database_url_or_default
    env["FARM_STATE_DIR"] = str(settings.state_dir.resolve())
    env["FARM_QUEUE"] = settings.queue
    env["FARM_KEY_PREFIX"] = settings.key_prefix
    env["FARM_TEST_USER"] = settings.test_user
    if settings.dashboard_url:
        env["FARM_DASHBOARD_URL"] = settings.dashboard_url
    return env


__all__ = ["conductor", "serve"]
