import io
import json
import logging

from farm.core.logs import JsonFormatter, TextFormatter, event


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"farm.test.{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger, stream


def test_json_lines_carry_the_event_and_its_fields() -> None:
    logger, stream = capture(JsonFormatter())
    event(logger, "snapshot.fetched", digest="ab" * 32, bytes=1234, path=object())
    line = json.loads(stream.getvalue())
    assert line["event"] == "snapshot.fetched"
    assert line["level"] == "info"
    assert line["bytes"] == 1234 and line["digest"] == "ab" * 32
    assert isinstance(line["path"], str)  # not JSON: written as text, never dropped
    assert "ts" in line and "\n" not in stream.getvalue().rstrip("\n")


def test_a_message_with_newlines_stays_one_json_line() -> None:
    logger, stream = capture(JsonFormatter())
    logger.warning("two\nlines <b>", extra={"why": "a\rb"})
    assert stream.getvalue().count("\n") == 1
    assert json.loads(stream.getvalue())["event"] == "two\nlines <b>"


def test_text_lines_for_people() -> None:
    logger, stream = capture(TextFormatter())
    event(logger, "worker.ready", name="h1", capacity=4)
    assert stream.getvalue().rstrip().endswith("info    worker.ready name=h1 capacity=4")
