"""Streaming ingestion: the producer, the landing zone and the consumer service.

``landing``  record → Arrow flattening and atomic, deterministic Parquet files (any fsspec URL).
``producer`` publishes JSON Lines to Kafka, bytes verbatim.
``consumer`` the consumer group: validate, land exactly once, dead-letter the rest, metrics.
"""
