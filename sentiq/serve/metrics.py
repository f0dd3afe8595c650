"""The service's Prometheus metrics, in a registry of its own (two apps in one process do not mix them)."""

from __future__ import annotations

from collections.abc import Callable

from sentiq.serve.batcher import Pass

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServiceMetrics:
    """Requests by endpoint and status, classify latency, texts and requests per pass, queue depth, and
    texts and words classified (totals, and per second over the last pass)."""

    def __init__(self, queue_depth: Callable[[], float]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "sentiq_requests", "Requests answered, by endpoint and HTTP status.", ["endpoint", "status"], registry=r
        )
        self.latency = Histogram(
            "sentiq_classify_seconds", "Time to answer a classify request.", buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_texts = Histogram(
            "sentiq_batch_texts", "Texts per classifier pass.", buckets=SIZE_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "sentiq_batch_requests",
            "Requests whose texts joined one classifier pass.",
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        Gauge("sentiq_queue_texts", "Texts waiting for a classifier pass.", registry=r).set_function(queue_depth)
        self.texts = Counter("sentiq_texts", "Texts classified.", registry=r)
        self.words = Counter("sentiq_words", "Words classified (whitespace-separated).", registry=r)
        self.texts_per_s = Gauge("sentiq_texts_per_second", "Texts per second of the last pass.", registry=r)
        self.words_per_s = Gauge("sentiq_words_per_second", "Words per second of the last pass.", registry=r)

    def on_pass(self, p: Pass) -> None:
        self.batch_texts.observe(p.texts)
        self.batch_requests.observe(p.requests)
        self.texts.inc(p.texts)
        self.words.inc(p.words)
        if p.seconds > 0:
            self.texts_per_s.set(p.texts / p.seconds)
            self.words_per_s.set(p.words / p.seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
