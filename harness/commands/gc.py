"""``harness gc``: remove what runs that could not clean up after themselves left behind.

A run tears its cluster down itself, on every exit it can see (errors,
Ctrl-C, SIGTERM, SIGHUP); gc is for the ones it cannot (SIGKILL, a machine
that went down). It must never remove a live run's cluster, so every run
names its owner (pid, host and process start time; see
:mod:`harness.cluster.owner`): a local run in its record in the state dir, a
Docker run in labels on each of its objects; and gc skips a run whose owner
is alive, unless ``--force``. Objects made before owners were recorded carry
no owner label and count as left behind.
"""

from __future__ import annotations

import argparse
from typing import Any

from harness.cluster.owner import Owner
from harness.errors import HarnessError

__all__ = ["docker_gc", "gc_command", "remove_images"]

#: every image the harness builds is named ``harness-...`` (see harness.cluster.image)
IMAGE_PREFIX = "harness-"


def gc_command(args: argparse.Namespace) -> int:
    from harness.cluster.local import gc as local_gc

    local = local_gc(run_id=args.run_id, force=args.force)
    _print("local", local)
    try:
        from harness.cluster.docker import docker_client
        client = docker_client(timeout_s=60)
    except (ImportError, HarnessError) as e:
        if args.images:
            raise HarnessError(f"--images needs Docker: {e}") from None
        print(f"docker: skipped ({e})")
        return 0
    try:
        _print("docker", docker_gc(client, run_id=args.run_id, force=args.force))
        if args.images:
            _print("docker", remove_images(client))
    finally:
        client.close()
    return 0


def _print(where: str, removed: dict[str, list[str]]) -> None:
    for kind, names in removed.items():
        if kind == "skipped":
            for name in names:
                print(f"{where}: skipped run {name}; --force removes it")
        elif kind == "kept":
            for name in names:
                print(f"{where}: kept image {name}")
        else:
            print(f"{where}: removed {len(names)} {kind}: {', '.join(names) if names else '-'}")


def docker_gc(client: Any, *, run_id: str | None = None, force: bool = False
              ) -> dict[str, list[str]]:
    """Remove the containers, networks and volumes of every harness run (or of ``run_id``)
    whose owner is gone; a run whose owner is alive, or on another host, is skipped
    unless ``force``. Returns what was removed and (``"skipped"``) the runs skipped."""
    from harness.cluster.docker import HARNESS_LABEL, RUN_LABEL, gc

    selector = f"{RUN_LABEL}={run_id}" if run_id is not None else f"{HARNESS_LABEL}=1"
    filters = {"label": selector}
    # every object of a run carries its owner's labels; one is enough to judge the run
    owners: dict[str, Owner | None] = {}
    objects = [*client.containers.list(all=True, filters=filters),
               *client.networks.list(filters=filters), *client.volumes.list(filters=filters)]
    for obj in objects:
        # a container's labels are a property (under Config); a network's and a volume's
        # are in their attributes
        labels = getattr(obj, "labels", None) or (getattr(obj, "attrs", None) or {}).get(
            "Labels") or {}
        rid = labels.get(RUN_LABEL)
        if rid is None:
            continue
        owner = Owner.from_labels(labels)
        if owners.get(rid) is None:
            owners[rid] = owner
    done: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": [],
                                  "skipped": []}
    for rid, owner in sorted(owners.items()):
        alive = owner.alive() if owner is not None else False
        if not force and owner is not None and alive is not False:
            why = "is alive" if alive else f"runs on host {owner.host}"
            done["skipped"].append(f"{rid} (owner {owner.describe()} {why})")
            continue
        for kind, names in gc(client, run_id=rid).items():
            done.setdefault(kind, []).extend(names)
    return done


def remove_images(client: Any) -> dict[str, list[str]]:
    """Remove the images the harness built: labelled ``harness.image`` (every one it
    builds or imports) or tagged ``harness-...`` (in case a label was lost).

    Never forced: an image a container still uses (a live run's, or one gc skipped)
    stays and is listed under ``"kept"``; so does a base that an image we did not
    build was made from. Returns ``{"images": removed tags, "kept": ...}``.
    """
    import docker.errors

    from harness.cluster.image import LABEL

    tags: set[str] = set()
    for image in client.images.list(filters={"label": LABEL}):
        tags.update(image.tags)
    for image in client.images.list():
        tags.update(t for t in image.tags if t.startswith(IMAGE_PREFIX))
    done: dict[str, list[str]] = {"images": [], "kept": []}
    errors: list[str] = []
    # system images first: a base cannot go while an image built on it exists
    for tag in sorted(tags, key=lambda t: (t.startswith("harness-base"), t)):
        try:
            client.images.remove(tag)
            done["images"].append(tag)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as e:
            if e.status_code == 409:  # in use by a container, or the base of another image
                done["kept"].append(f"{tag} (in use)")
            else:
                errors.append(f"{tag}: {getattr(e, 'explanation', None) or e}")
    if errors:
        raise HarnessError("could not remove images: " + "; ".join(errors))
    return done
