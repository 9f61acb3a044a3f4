import logging

from pipeline.progress import Progress, format_seconds, progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_line_has_counts_rate_and_eta():
    clock = Clock()
    bar = Progress("chips", total=100, unit="scene", clock=clock)
    clock.now += 10
    bar.update(25, kept_s1=7)
    assert bar.line() == "chips: 25/100 scenes (25 %) 2.5 scene/s ETA 30 s kept_s1=7"
    clock.now += 30
    bar.update(75)
    assert bar.line() == "chips: 100/100 scenes (100 %) 2.5 scene/s in 40 s kept_s1=7"


def test_lines_are_logged_at_info_at_most_every_interval(caplog):
    clock = Clock()
    bar = Progress("captions", total=10, unit="chip", interval=5.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="pipeline.progress"):
        for _ in range(10):
            clock.now += 1
            bar.update()
    lines = [r for r in caplog.records if r.name == "pipeline.progress"]
    assert [r.levelno for r in lines] == [logging.INFO, logging.INFO]
    assert lines[0].getMessage().startswith("captions: 5/10 chips")


def test_context_manager_logs_start_and_end(caplog):
    with (
        caplog.at_level(logging.INFO, logger="pipeline.progress"),
        progress(3, "chip", "shards") as bar,
    ):
        bar.update(3)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "shards: 3 chips to do"
    assert messages[-1].startswith("shards: 3/3 chips (100 %)")


def test_format_seconds():
    assert format_seconds(59.4) == "59 s"
    assert format_seconds(61) == "1 min 01 s"
    assert format_seconds(3 * 3600 + 5 * 60) == "3 h 05 min"
