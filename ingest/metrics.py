"""Prometheus metrics of the intake (exposed by the service process)."""

from prometheus_client import Counter, Histogram

FRAMES_ACCEPTED = Counter("roadmesh_frames_accepted_total", "Frames stored")
FRAMES_DUPLICATE = Counter(
    "roadmesh_frames_duplicate_total", "Frames received again and not stored twice"
)
MESSAGES_REJECTED = Counter("roadmesh_messages_rejected_total", "Messages rejected", ["reason"])
CAPTURE_TO_COMMIT = Histogram(
    "roadmesh_capture_to_commit_seconds",
    "Lag from capture on the device to the committed row",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600, 86400),
)
