"""How long a worker's consumer lets the broker hold a fetch when there is no new data.

faust (1.x, aiokafka driver) builds its consumer with `fetch_max_wait_ms=1500`, hard-coded.
Measured here against the test broker: a fetch that finds nothing is answered only after that
wait, even when records arrive meanwhile, so every stage added 0.1-1.5 s (median about 1 s) to
an alarm at 500 events/s: 2.3 s p50 from device to observations over the two stages.
`kafka.fetch_max_wait_s` (rules) replaces the constant; a short wait costs a few more
(empty) fetch requests per second per worker, which brokers serve cheaply.

faust offers no setting for it, so the worker process swaps the consumer class faust's driver
instantiates for a subclass that sets the wait (this module only; other aiokafka users in the
process are untouched).
"""

from __future__ import annotations

import types


def use_fetch_max_wait(seconds: float) -> None:
    """Make faust's aiokafka consumers in this process wait at most `seconds` for data per fetch."""
    import faust.transport.drivers.aiokafka as driver

    real = getattr(driver.aiokafka, "__devsync_real__", driver.aiokafka)
    wait_ms = max(1, int(round(seconds * 1000)))

    class ConsumerWithFetchWait(real.AIOKafkaConsumer):
        def __init__(self, *args, **kwargs):
            kwargs["fetch_max_wait_ms"] = wait_ms
            super().__init__(*args, **kwargs)

    proxy = types.ModuleType(real.__name__)
    proxy.__dict__.update(real.__dict__)
    proxy.AIOKafkaConsumer = ConsumerWithFetchWait
    proxy.__devsync_real__ = real
    driver.aiokafka = proxy
