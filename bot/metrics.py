"""Prometheus metrics.

With several uvicorn workers, ``PROMETHEUS_MULTIPROC_DIR`` is set by ``sisong
serve`` so ``/metrics`` adds up every worker, not just the one that answered.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("sisong_webhook_requests_total", "Webhook requests by outcome", ["method", "status"])
LATENCY = Histogram(
    "sisong_webhook_latency_seconds",
    "Webhook handling time",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8),
)
HANDLER_OUTCOMES = Counter("sisong_handler_outcomes_total", "Handler runs by outcome", ["handler", "outcome"])
DEDUPE_HITS = Counter("sisong_dedupe_hits_total", "Retried deliveries answered from the dedupe cache")
OUTBOUND = Counter("sisong_outbound_calls_total", "Outbound WeChat API calls by errcode", ["api", "errcode"])
TOKEN_FETCHES = Counter("sisong_token_fetches_total", "Access-token fetches from WeChat")


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
