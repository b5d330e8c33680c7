"""The server's memory of deliveries and triggered commits, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

from farm.store import ResultStore
from farm.store.deliveries import HEAD, head_key


class TestDeliveryContract:
    def test_a_key_is_new_once(self, store: ResultStore) -> None:
        assert store.deliveries.first_time("github", "d-1")
        assert not store.deliveries.first_time("github", "d-1")
        assert store.deliveries.seen("github", "d-1")

    def test_sources_keep_their_own_keys(self, store: ResultStore) -> None:
        assert store.deliveries.first_time("github", "same")
        assert store.deliveries.first_time("gitlab", "same")
        assert not store.deliveries.seen("api", "same")

    def test_a_forgotten_key_can_be_acted_on_again(self, store: ResultStore) -> None:
        key = head_key("github.com/acme/shop", "a" * 40)
        assert store.deliveries.first_time(HEAD, key)
        store.deliveries.forget(HEAD, key)
        assert not store.deliveries.seen(HEAD, key)
        assert store.deliveries.first_time(HEAD, key)

    def test_racing_receivers_act_once(self, store: ResultStore) -> None:
        answers: list[bool] = []
        lock = threading.Lock()

        def receive() -> None:
            answer = store.deliveries.first_time("github", "raced")
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=receive) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == [False] * 7 + [True]
