"""The review queue: three agreeing votes settle a detection and move its feature; gold
tasks measure accuracy, which weights votes; nobody reviews their own detections;
missed objects are boxed by hand; settled labels export as a YOLO dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tests.webapp.people import detection, device, feature, frames_along, person
from webapp.accounts.models import User
from webapp.api.models import FeatureEvent
from webapp.fleet.models import Frame
from webapp.images import LocalObjectStore
from webapp.mapping.models import MapFeature, ReviewTask, Vote
from webapp.review import consensus
from webapp.review.export import export_yolo
from webapp.review.models import MissedBox

pytestmark = pytest.mark.django_db


@pytest.fixture
def tasks() -> list[ReviewTask]:
    frames = frames_along(device(person("driver"), "dev-a"), 4)
    out = []
    for i, label in enumerate(["stop", "speed_limit_50", "fire_hydrant", "yield"]):
        f = feature(label, 60.17 + i * 1e-4, 24.94)
        out.append(ReviewTask.objects.create(feature=f, detection=detection(frames[i], f)))
    return out


def reviewers(n: int, first: int = 0) -> list[User]:
    return [person(f"reviewer{i}", User.Role.REVIEWER) for i in range(first, first + n)]


def vote(c: Client, task: ReviewTask, verdict: str, label: str = "") -> Any:
    return c.post(
        f"/review/tasks/{task.pk}/vote",
        json.dumps({"verdict": verdict, "label": label}),
        content_type="application/json",
    )


def as_user(user: User) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_three_agreeing_votes_settle_a_task_and_confirm_its_feature(
    tasks: list[ReviewTask],
) -> None:
    people = reviewers(3)
    task = tasks[0]
    assert vote(as_user(people[0]), task, "accept").json()["settled"] is None
    assert vote(as_user(people[1]), task, "accept").json()["settled"] is None
    third = vote(as_user(people[2]), task, "accept")
    assert third.status_code == 201 and third.json()["settled"] == "accept"
    task.refresh_from_db()
    assert (task.state, task.decided_label) == ("decided", "accept")
    assert MapFeature.objects.get(pk=task.feature_id).status == "confirmed"
    assert FeatureEvent.objects.filter(feature_id=task.feature_id, kind="changed").exists()


def test_a_rejected_task_rejects_its_feature_and_a_relabel_renames_it(
    tasks: list[ReviewTask],
) -> None:
    people = reviewers(3)
    for p in people:
        vote(as_user(p), tasks[1], "reject")
        vote(as_user(p), tasks[2], "relabel", "traffic_light")
    assert MapFeature.objects.get(pk=tasks[1].feature_id).status == "rejected"
    renamed = MapFeature.objects.get(pk=tasks[2].feature_id)
    assert (renamed.label, renamed.status) == ("traffic_light", "confirmed")


def test_a_split_vote_does_not_settle(tasks: list[ReviewTask]) -> None:
    people = reviewers(5)
    for p, verdict in zip(people, ["accept", "reject", "accept", "reject", "accept"], strict=True):
        result = vote(as_user(p), tasks[0], verdict).json()
    assert result["settled"] == "accept"  # three accepts, weight 3 of 5
    tasks[1].refresh_from_db()
    for p, verdict in zip(people[:4], ["accept", "reject", "accept", "reject"], strict=True):
        assert vote(as_user(p), tasks[1], verdict).json()["settled"] is None


def test_the_consensus_is_a_setting(tasks: list[ReviewTask], web: Any) -> None:
    web(review_consensus=1.0)
    assert vote(as_user(reviewers(1)[0]), tasks[0], "accept").json()["settled"] == "accept"


def test_gold_answers_measure_accuracy_and_a_poor_reviewer_weighs_nothing(
    tasks: list[ReviewTask],
) -> None:
    good, bad = reviewers(2)
    sign = feature("stop", 60.2, 24.9)
    golds = [
        ReviewTask.objects.create(
            feature=sign, detection=tasks[0].detection, is_gold=True, gold_label="accept"
        )
        for _ in range(6)
    ]
    for g in golds:
        consensus.cast_vote(good, g.pk, "accept", "", 3)
        consensus.cast_vote(bad, g.pk, "reject", "", 3)
    assert consensus.accuracy(good).value == pytest.approx((6 + 0.8 * 4) / 10)
    assert consensus.accuracy(bad).weight == 0.0
    assert all(ReviewTask.objects.get(pk=g.pk).state == "open" for g in golds)  # gold never settles
    # three accepts where one voter weighs nothing: not a majority of weight... but 3 of 3 agree
    others = reviewers(2, first=10)
    votes = [
        Vote(task=tasks[3], reviewer=bad, verdict="reject"),
        Vote(task=tasks[3], reviewer=others[0], verdict="accept"),
        Vote(task=tasks[3], reviewer=others[1], verdict="accept"),
    ]
    assert consensus.settled_answer(votes, 3) is None  # only two real accepts
    votes.append(Vote(task=tasks[3], reviewer=good, verdict="accept"))
    assert consensus.settled_answer(votes, 3) == "accept"


def test_gold_tasks_are_mixed_into_the_queue_unannounced(
    tasks: list[ReviewTask], client: Client
) -> None:
    reviewer = reviewers(1)[0]
    gold = ReviewTask.objects.create(
        feature=tasks[0].feature, detection=tasks[0].detection, is_gold=True, gold_label="accept"
    )
    client.force_login(reviewer)
    shown = []
    for _ in range(5):
        body = client.get("/review/next").json()
        assert "gold" not in json.dumps(body)
        shown.append(body["task"]["id"])
        vote(client, ReviewTask.objects.get(pk=body["task"]["id"]), "accept")
    assert gold.pk in shown and shown.index(gold.pk) == settings.WEB.review_gold_every - 1


def test_nobody_reviews_their_own_devices_detections(tasks: list[ReviewTask]) -> None:
    driver = User.objects.get(username="driver")
    driver.role = User.Role.REVIEWER
    driver.save()
    c = as_user(driver)
    assert c.get("/review/next").json()["task"] is None
    refused = vote(c, tasks[0], "accept")
    assert refused.status_code == 403 and "own devices" in refused.json()["error"]


def test_the_vote_endpoint_refuses_anonymous_users_and_non_reviewers(
    client: Client, tasks: list[ReviewTask]
) -> None:
    assert vote(client, tasks[0], "accept").status_code == 401
    assert (
        vote(as_user(person("consumer", User.Role.CONSUMER)), tasks[0], "accept").status_code == 403
    )
    assert client.get("/review/next").status_code == 401
    assert client.get("/review/").status_code == 302  # to the sign-in page
    assert as_user(person("driver2")).get("/review/").status_code == 403


def test_a_reviewer_votes_once_per_task_and_not_on_a_settled_one(
    tasks: list[ReviewTask], web: Any
) -> None:
    web(review_consensus=1.0)
    a, b = reviewers(2)
    assert vote(as_user(a), tasks[0], "accept").status_code == 201
    assert vote(as_user(a), tasks[1], "reject").status_code == 201
    again = vote(as_user(a), tasks[1], "accept")
    assert again.status_code == 409
    late = vote(as_user(b), tasks[0], "accept")
    assert late.status_code == 409 and "settled" in late.json()["error"]
    assert vote(as_user(b), tasks[2], "maybe").status_code == 400
    assert vote(as_user(b), tasks[2], "relabel").status_code == 400


def test_a_reviewer_boxes_what_the_detector_missed(client: Client, tasks: list[ReviewTask]) -> None:
    client.force_login(reviewers(1)[0])
    frame = tasks[0].detection.frame  # type: ignore[union-attr]
    url = f"/review/frames/{frame.pk}/missed"
    ok = client.post(
        url,
        json.dumps({"label": "yield", "box": [10, 20, 60, 90]}),
        content_type="application/json",
    )
    assert ok.status_code == 201
    assert MissedBox.objects.get().label == "yield"
    outside = client.post(
        url,
        json.dumps({"label": "yield", "box": [10, 20, 6000, 90]}),
        content_type="application/json",
    )
    assert outside.status_code == 400


def test_settled_labels_and_missed_boxes_export_as_a_yolo_dataset(
    tasks: list[ReviewTask], tmp_path: Path
) -> None:
    store = LocalObjectStore(settings.SERVER.image_dir)
    for t in tasks:
        f = t.detection.frame  # type: ignore[union-attr]
        sha = store.put(b"\xff\xd8 frame %d \xff\xd9" % f.pk)
        Frame.objects.filter(pk=f.pk).update(image_sha256=sha)
    people = reviewers(3)
    for p in people:
        consensus.cast_vote(p, tasks[0].pk, "accept", "", 3)
        consensus.cast_vote(p, tasks[1].pk, "relabel", "speed_limit_60", 3)
        consensus.cast_vote(p, tasks[2].pk, "reject", "", 3)
    consensus.mark_missed(people[0], tasks[0].detection.frame_id, "yield", (0, 0, 128, 72))  # type: ignore[union-attr]
    summary = export_yolo(tmp_path / "yolo")
    assert summary.classes == ["speed_limit_60", "stop", "yield"]
    assert (summary.images, summary.boxes) == (3, 3)
    labels = sorted((tmp_path / "yolo" / "labels" / "train").iterdir())
    first = labels[0].read_text().splitlines()
    assert first[0] == "1 0.101562 0.208333 0.046875 0.083333"  # the stop box 100..160 x 120..180
    assert first[1] == "2 0.050000 0.050000 0.100000 0.100000"
    assert labels[2].read_text() == ""  # rejected: a background image
    data = (tmp_path / "yolo" / "data.yaml").read_text()
    assert "  0: speed_limit_60" in data and "train: images/train" in data


def test_marking_a_missed_object_needs_a_reviewer(client: Client, tasks: list[ReviewTask]) -> None:
    frame = tasks[0].detection.frame  # type: ignore[union-attr]
    body = json.dumps({"label": "yield", "box": [10, 20, 60, 90]})
    url = f"/review/frames/{frame.pk}/missed"
    assert client.post(url, body, content_type="application/json").status_code == 401
    client.force_login(person("consumer", User.Role.CONSUMER))
    assert client.post(url, body, content_type="application/json").status_code == 403
    assert not MissedBox.objects.exists()
