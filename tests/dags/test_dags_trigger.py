"""The event-driven start: the apache-kafka provider's message-queue trigger fires on a real broker.

The trigger runs exactly as the Airflow triggerer runs it (its async ``run()``), with the Kafka
connection ``loyalty_kafka`` defined from settings the way ``loyalty up`` defines it.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from alerting_servers import airflow_test_environment

airflow_test_environment()

from loyalty_monitor import pipeline  # noqa: E402


def publish(settings, *values: bytes) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**settings.kafka_client_config())
    for value in values:
        producer.send(settings.topic_batches, key=b"touchpoints", value=value)
    producer.flush()
    producer.close()


def test_batch_landed_message_fires_the_kafka_message_queue_trigger(settings, monkeypatch):
    from airflow.providers.apache.kafka.triggers.msg_queue import KafkaMessageQueueTrigger

    monkeypatch.setenv(f"AIRFLOW_CONN_{pipeline.KAFKA_CONNECTION_ID.upper()}",
                       json.dumps(pipeline.kafka_connection(settings)))
    trigger = KafkaMessageQueueTrigger(topics=[settings.topic_batches], kafka_config_id=pipeline.KAFKA_CONNECTION_ID,
                                       apply_function="loyalty_monitor.pipeline.is_batch_landed",
                                       poll_timeout=0.5, poll_interval=0.1)
    batch = {"batch_id": "touchpoints-0-0-41", "topic": "touchpoints", "partitions": {"0": [0, 41]},
             "event_dates": ["2026-03-11", "2026-03-12"], "records": 42, "dead_letters": 1,
             "files": ["touchpoints/event_date=2026-03-12/x.parquet"], "landed_at": "2026-03-12T10:00:00Z"}

    async def first_event():
        events = trigger.run()
        try:
            return await asyncio.wait_for(events.__anext__(), timeout=60)
        finally:
            await events.aclose()
            await trigger.cleanup()

    # a malformed message is skipped by the filter, the real one starts the run
    publish(settings, b"{not json", json.dumps({"no": "batch id"}).encode(), json.dumps(batch).encode())
    event = asyncio.run(first_event())
    assert event.payload == {"batch_id": "touchpoints-0-0-41", "topic": "touchpoints",
                             "event_dates": ["2026-03-11", "2026-03-12"], "records": 42}


class _Message:
    def __init__(self, value):
        self._value = value

    def value(self):
        return self._value


@pytest.mark.parametrize("value, expected", [
    (None, None), (b"", None), (b"\xff\xfe", None), (b"[1, 2]", None), (b'{"topic": "x"}', None),
    (b'{"batch_id": "b1", "event_dates": ["2026-01-02"]}',
     {"batch_id": "b1", "topic": None, "event_dates": ["2026-01-02"], "records": None}),
])
def test_batch_landed_filter_never_crashes_on_bad_messages(value, expected):
    assert pipeline.is_batch_landed(_Message(value)) == expected
