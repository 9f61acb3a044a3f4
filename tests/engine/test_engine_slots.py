"""Machine-wide provider slots (lock files): never more holders of a host than its limit,
across threads and processes; hosts without a limit and local paths are never held."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

from pipeline.engine.slots import ProviderLimits, provider_hosts

HOLD_S = 0.15


def _holders(limits: ProviderLimits, urls: list[str], threads: int) -> int:
    """The most threads seen inside ``limits.hold(urls)`` at once."""
    inside, peak, lock = 0, 0, threading.Lock()

    def work() -> None:
        nonlocal inside, peak
        with limits.hold(urls):
            with lock:
                inside += 1
                peak = max(peak, inside)
            time.sleep(HOLD_S)
            with lock:
                inside -= 1

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return peak


def test_provider_hosts_are_url_hosts_sorted_and_distinct():
    locations = [
        "http://127.0.0.1:9000/a.tif",
        "/data/b.tif",
        "https://Example.org/c.tif?sig=x",
        "http://127.0.0.1:9000/d.tif",
    ]
    assert provider_hosts(locations) == ["127.0.0.1:9000", "example.org"]


def test_machine_slots_bound_the_threads_holding_a_host():
    host = f"slots-{uuid.uuid4().hex}.test"
    url = [f"http://{host}/x.tif"]
    assert _holders(ProviderLimits(default=1), url, threads=4) == 1
    assert _holders(ProviderLimits(default=2), url, threads=4) == 2
    assert _holders(ProviderLimits(hosts=((host, 3),)), url, threads=4) == 3
    assert _holders(ProviderLimits(default=None), url, threads=4) == 4  # no limit
    assert _holders(ProviderLimits(default=1), ["/local/x.tif"], threads=4) == 4  # no host


HOLDER = r"""
import sys, time
from pipeline.engine.slots import ProviderLimits
with ProviderLimits(default=1).hold([sys.argv[1]]):
    print(f"in {time.monotonic()}", flush=True)
    time.sleep(float(sys.argv[2]))
    print(f"out {time.monotonic()}", flush=True)
"""


def test_machine_slots_hold_across_processes():
    """Two processes wanting the only slot of a host take turns (intervals do not overlap)."""
    url = f"http://slots-{uuid.uuid4().hex}.test/x.tif"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HOLDER, url, "0.5"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    spans = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        times = dict(line.split() for line in out.splitlines())
        spans.append((float(times["in"]), float(times["out"])))
    (a_in, a_out), (b_in, _) = sorted(spans)
    assert a_out - a_in >= 0.5 and b_in >= a_out


def test_a_killed_holder_frees_its_slot():
    """The kernel releases a dead process's lock: the next holder does not wait for it."""
    url = f"http://slots-{uuid.uuid4().hex}.test/x.tif"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, "600"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().startswith("in ")
    holder.kill()
    holder.wait(timeout=30)
    started = time.monotonic()
    with ProviderLimits(default=1).hold([url]):
        waited = time.monotonic() - started
    assert waited < 5
