"""Prometheus metrics of the intake; `record` counts an outcome once its transaction committed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from ingest.door import Outcome

FRAMES_ACCEPTED = Counter("roadmesh_frames_accepted_total", "Frames stored")
FRAMES_FLAGGED = Counter(
    "roadmesh_frames_flagged_total", "Frames stored as flagged (excluded from rewards)"
)
FRAMES_DUPLICATE = Counter(
    "roadmesh_frames_duplicate_total", "Frames received again and not stored twice"
)
MESSAGES_REJECTED = Counter("roadmesh_messages_rejected_total", "Messages rejected", ["reason"])
FRAUD_FLAGS = Counter(
    "roadmesh_fraud_flags_total", "Fraud and plausibility flags raised", ["check"]
)
CAPTURE_TO_COMMIT = Histogram(
    "roadmesh_capture_to_commit_seconds",
    "Lag from capture on the device to the committed row",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600, 86400),
)
BATCH_SIZE = Histogram(
    "roadmesh_ingest_batch_messages",
    "Messages per committed batch",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
)
BATCH_SECONDS = Histogram(
    "roadmesh_ingest_batch_seconds",
    "Time to verify, store and commit one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
IMAGE_CHECK_QUEUE_DEPTH = Gauge(
    "roadmesh_image_check_jobs_pending", "Devices whose frames wait for their image checks"
)
RECEIPTS = Counter("roadmesh_receipts_published_total", "Signed receipts published to devices")
INBOX_DEPTH = Gauge(
    "roadmesh_ingest_inbox_messages", "Messages received and not yet committed by this worker"
)


def record(outcome: Outcome) -> None:
    if outcome.status == "stored":
        FRAMES_ACCEPTED.inc()
        if outcome.flagged:
            FRAMES_FLAGGED.inc()
        for check in outcome.checks:
            FRAUD_FLAGS.labels(check=check).inc()
        if outcome.lag_s is not None:
            CAPTURE_TO_COMMIT.observe(max(outcome.lag_s, 0.0))
    elif outcome.status == "duplicate":
        FRAMES_DUPLICATE.inc()
    elif outcome.status == "rejected":
        MESSAGES_REJECTED.labels(reason=outcome.reason).inc()
