"""The server's two halves as production runs them: the door, then the image-check job."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.door import Door, Outcome
from ingest.image_checks import ImageCheckHandler
from ingest.policy import IntakePolicy
from webapp.images import ObjectStore
from webapp.jobs.worker import Worker


@dataclass
class Ingest:
    """`handle` stores a message through the door and runs the image checks it made due."""

    store: ObjectStore
    policy: IntakePolicy = field(default_factory=IntakePolicy)

    def __post_init__(self) -> None:
        self.door = Door(self.store, self.policy)
        self.checks = ImageCheckHandler(self.store, self.policy)
        self.worker = Worker(self.checks)

    def handle(self, topic: str, payload: bytes) -> Outcome:
        outcome = self.door.handle(topic, payload)
        self.check_images()
        return outcome

    def check_images(self) -> None:
        self.worker.run_until_idle()
