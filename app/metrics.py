"""Prometheus metrics of this gateway process (served at /metrics).

With several uvicorn workers, each worker counts for itself; scrape each process, or run one
worker per container.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

HTTP_REQUESTS = Counter(
    "paseo_gateway_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
ACTIVE_STREAMS = Gauge(
    "paseo_gateway_active_streams",
    "Clients following a turn now (event streams, and chat completions waiting for the end).",
    registry=REGISTRY,
)
TURNS = Counter(
    "paseo_gateway_turns",
    "Turns that ended, by final status and the daemon their session is on.",
    ["outcome", "daemon"],
    registry=REGISTRY,
)
TURN_DURATION = Histogram(
    "paseo_gateway_turn_duration_seconds",
    "From a turn's start to its end, by daemon.",
    ["daemon"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
    registry=REGISTRY,
)
CLI_RUNNING = Gauge(
    "paseo_gateway_cli_processes", "paseo CLI children running now.", registry=REGISTRY
)
CLI_DURATION = Histogram(
    "paseo_gateway_cli_duration_seconds",
    "How long paseo CLI children ran, by command.",
    ["command"],
    buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 300, 1800),
    registry=REGISTRY,
)
CLI_SLOT_WAIT = Histogram(
    "paseo_gateway_cli_slot_wait_seconds",
    "How long short CLI calls waited for a free process slot (the semaphore).",
    buckets=(0.001, 0.01, 0.1, 0.5, 1, 2, 5, 15, 60),
    registry=REGISTRY,
)
DAEMON_REQUEST_DURATION = Histogram(
    "paseo_gateway_daemon_request_duration_seconds",
    "Daemon transport: how long each WebSocket request took to be answered, by daemon and "
    "request type.",
    ["daemon", "type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15, 60),
    registry=REGISTRY,
)
DAEMON_CONNECTED = Gauge(
    "paseo_gateway_daemon_connected",
    "Daemon transport: 1 while the WebSocket to the daemon is open, else 0.",
    ["daemon"],
    registry=REGISTRY,
)
DAEMON_UP = Gauge(
    "paseo_gateway_daemon_up",
    "1 if the latest readiness check of the daemon succeeded, else 0 (either transport).",
    ["daemon"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "paseo_gateway_webhook_attempts",
    "Webhook delivery attempts this process made, by outcome: delivered, retrying, failed "
    "(no attempt left), disabled (the receiver answered 410).",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_QUEUE_AGE = Gauge(
    "paseo_gateway_webhook_queue_age_seconds",
    "How long the longest-waiting due webhook delivery has waited (0: none is due), as this "
    "process last saw it.",
    registry=REGISTRY,
)
