"""The fetch wait of faust's consumers and of our readers comes from the rules, not from library defaults.

faust hard-codes fetch_max_wait_ms=1500 for its aiokafka consumer; against the test broker that
added about a second per stage to an alarm (hub/runtime/kafka_fetch.py has the figures)."""

from __future__ import annotations

import asyncio

import aiokafka
import faust.transport.drivers.aiokafka as faust_driver

from hub.rules.kafka import KafkaRules
from hub.runtime.kafka_fetch import use_fetch_max_wait
from hub.runtime.kafka_read import reader_config
from hub.runtime.kafka_settings import KafkaSettings, consumer_config


def build(consumer_class, **kwargs):
    """aiokafka consumers must be built inside a running loop (nothing connects until start())."""
    async def make():
        return consumer_class(bootstrap_servers="127.0.0.1:1", **kwargs)

    return asyncio.run(make())


def build_faust_style_consumer():
    """As faust's driver does: through the module attribute, with its own constant."""
    return build(faust_driver.aiokafka.AIOKafkaConsumer, fetch_max_wait_ms=1500)


def test_faust_consumers_use_the_rules_fetch_wait():
    use_fetch_max_wait(0.02)
    assert build_faust_style_consumer()._fetch_max_wait_ms == 20
    use_fetch_max_wait(0.3)  # a second call replaces the wait, it does not wrap the first subclass
    consumer = build_faust_style_consumer()
    assert consumer._fetch_max_wait_ms == 300
    assert type(consumer).__mro__[1] is aiokafka.AIOKafkaConsumer


def test_other_aiokafka_users_keep_their_setting():
    use_fetch_max_wait(0.02)
    assert build(aiokafka.AIOKafkaConsumer, fetch_max_wait_ms=700)._fetch_max_wait_ms == 700


def test_confluent_consumers_and_readers_wait_briefly():
    rules = KafkaRules(fetch_max_wait_s=0.05)
    assert consumer_config(KafkaSettings(bootstrap="127.0.0.1:9092"), rules, None)["fetch.wait.max.ms"] == 50
    assert reader_config({"bootstrap.servers": "x:1"})["fetch.wait.max.ms"] == int(KafkaRules().fetch_max_wait_s * 1000)
    assert reader_config({"bootstrap.servers": "x:1", "fetch.wait.max.ms": 5})["fetch.wait.max.ms"] == 5
