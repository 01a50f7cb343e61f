"""``harness gc`` on Docker objects: a run whose owner lives is skipped, a dead owner's run
(or one with no owner label) goes; ``--images`` removes only the harness's images and
keeps those in use.

The Docker test needs no image: a labelled network and volume are a run's objects as
far as gc is concerned. Every call names its own run id, so no other run on this
engine is looked at.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from harness.cluster.owner import Owner
from harness.commands.gc import docker_gc, remove_images
from harness.pytest_plugin import require


@pytest.fixture
def engine() -> Iterator[Any]:
    from harness.cluster.docker import docker_client, engine_available

    require(engine_available(), "no Docker engine reachable")
    client = docker_client(timeout_s=30)
    yield client
    client.close()


def _objects(client: Any, run_id: str, owner: dict[str, str]) -> list[str]:
    from harness.cluster.docker import HARNESS_LABEL, RUN_LABEL

    labels = {HARNESS_LABEL: "1", RUN_LABEL: run_id, **owner}
    net = client.networks.create(f"harness-{run_id}", driver="bridge", labels=labels)
    vol = client.volumes.create(f"harness-{run_id}-n1-data", labels=labels)
    return sorted([net.name, vol.name])


def _left(client: Any, run_id: str) -> list[str]:
    from harness.cluster.docker import RUN_LABEL

    filters = {"label": f"{RUN_LABEL}={run_id}"}
    return sorted([n.name for n in client.networks.list(filters=filters)]
                  + [v.name for v in client.volumes.list(filters=filters)])


@pytest.mark.parametrize("owner", ["alive", "reused pid", "none"])
def test_docker_gc_skips_live_owners(engine: Any, owner: str) -> None:
    from harness.cluster.docker import gc

    run_id = f"gc-test-{uuid.uuid4().hex[:8]}"
    me = Owner.current()
    labels = {"alive": me.labels(),
              "reused pid": Owner(me.pid, me.host, "1.00").labels(),  # our pid, not us
              "none": {}}[owner]
    made = _objects(engine, run_id, labels)
    try:
        removed = docker_gc(engine, run_id=run_id)
        if owner == "alive":
            assert removed["skipped"] == [f"{run_id} (owner {me.describe()} is alive)"]
            assert _left(engine, run_id) == made
            removed = docker_gc(engine, run_id=run_id, force=True)
        assert removed["skipped"] == []
        assert sorted(removed["networks"] + removed["volumes"]) == made
        assert _left(engine, run_id) == []
    finally:
        gc(engine, run_id=run_id)


def test_new_docker_objects_carry_their_owner() -> None:
    from harness.cluster.docker import _labels

    labels = _labels("r")
    assert Owner.from_labels(labels) == Owner.current()
    assert labels["harness.run"] == "r" and labels["harness"] == "1"


# --- --images, against a fake engine (the real images take minutes to rebuild) ---------


class _Image:
    def __init__(self, tags: list[str], labels: dict[str, str] | None = None) -> None:
        self.tags = tags
        self.labels = labels or {}


class _Images:
    def __init__(self, images: list[_Image], in_use: set[str]) -> None:
        self.images = images
        self.in_use = in_use
        self.removed: list[str] = []

    def list(self, filters: dict[str, str] | None = None) -> list[_Image]:
        label = (filters or {}).get("label")
        return [i for i in self.images if label is None or label in i.labels]

    def remove(self, tag: str) -> None:
        import docker.errors

        if tag in self.in_use:
            raise docker.errors.APIError("conflict", response=_Response(409))
        self.removed.append(tag)


class _Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.reason = "Conflict"


def test_images_removes_only_harness_images_and_keeps_those_in_use() -> None:
    images = _Images([
        _Image(["harness-base:1"], {"harness.image": "base"}),
        _Image(["harness-refsys:2"], {"harness.image": "harness-refsys"}),
        _Image(["harness-etcd:3"]),  # label lost: found by its name
        _Image(["harness-infra:4"], {"harness.image": "harness-infra"}),
        _Image(["debian:12", "myapp:1"]),
    ], in_use={"harness-infra:4"})

    class Client:
        pass

    client = Client()
    client.images = images  # type: ignore[attr-defined]
    done = remove_images(client)
    assert done["kept"] == ["harness-infra:4 (in use)"]
    # a base goes last: images built on it must go first
    assert images.removed == ["harness-etcd:3", "harness-refsys:2", "harness-base:1"]
    assert done["images"] == images.removed
