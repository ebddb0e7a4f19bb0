"""The volume list with ``--volumes`` (10,000) volumes in one project: the read path only.

Rows are written with ``bulk_create`` (each with its create Operation, on 4 storage hosts' pools,
every tenth one attached, ~2% deleted rows the list must skip), then requests go through Django's test
client in this process (no network, no web server): the first page of 100, a page deep in the list,
a filter, a sort. Per request: p50/p95 and the SQL queries (the same for any page).

Usage: .venv/bin/python bench/volume_list.py [--volumes 10000] [--runs 50]
Embedded defaults unless DATABASE_URL is set (dropped and recreated: its name must contain "bench").
Prints JSON.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import timedelta

import _harness as h
from instance_list import analyze, measure

API = "/api/v1/storage/volumes/"


def populate(project, user, n: int) -> None:
    from django.db import transaction
    from django.utils import timezone

    from storage.models import GIB, Attachment, StoragePool, Volume, VolumeType
    from workers.models import Host, Operation

    now = timezone.now()
    hosts = Host.objects.bulk_create(
        Host(name=f"store-{i}", roles=["compute", "storage"], last_heartbeat=now) for i in range(4)
    )
    pools = StoragePool.objects.bulk_create(
        StoragePool(host=host, name="local", pool="zenith", capacity_bytes=100_000 * GIB, reaches=[host.name])
        for host in hosts
    )
    vtype = VolumeType.objects.get(is_default=True)
    statuses = ["available"] * 80 + ["in-use"] * 10 + ["error"] * 3 + ["creating"] * 5 + ["deleted"] * 2
    with transaction.atomic():
        for start in range(0, n, 1000):
            ops, rows, attachments = [], [], []
            for i in range(start, min(n, start + 1000)):
                volume_id = uuid.uuid4()
                op = Operation(
                    kind="volume.create",
                    state="succeeded",
                    progress=100,
                    resource_type="volume",
                    resource_id=volume_id,
                    project=project,
                    user=user,
                    task_name="workers.tasks.run_transition",
                    queue="conductor",
                    payload={"resource_id": str(volume_id)},
                    deadline=now + timedelta(minutes=10),
                )
                ops.append(op)
                status = statuses[i % len(statuses)]
                pool = pools[i % len(pools)]
                rows.append(
                    Volume(
                        id=volume_id,
                        name=f"vol-{i:05d}",
                        project=project,
                        user=user,
                        size=1 + i % 20,
                        volume_type=vtype,
                        status=status,
                        pool=pool,
                        connection={"type": "file", "path": f"/v/volume-{volume_id}", "format": "qcow2"},
                        operation=op,
                    )
                )
                if status == "in-use":
                    attachments.append(
                        Attachment(
                            volume_id=volume_id,
                            instance_id=uuid.uuid4(),
                            host=pool.host,
                            device="/dev/vdb",
                            attached_at=now,
                        )
                    )
            Operation.objects.bulk_create(ops)
            Volume.objects.bulk_create(rows)
            Attachment.objects.bulk_create(attachments)
    ids = list(Volume.objects.order_by("name").values_list("pk", flat=True))
    with transaction.atomic():
        for offset, pk in enumerate(ids):
            Volume.objects.filter(pk=pk).update(created=now - timedelta(seconds=len(ids) - offset))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--volumes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    settings = h.prepare("volume-list")
    user, project, password = h.bench_user()
    t0 = time.perf_counter()
    populate(project, user, args.volumes)
    analyze()
    populate_s = time.perf_counter() - t0

    from django.test import Client

    from identity import services
    from storage.models import Volume

    token = services.issue_token(username=user.username, password=password, project=project.name).token
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    visible = Volume.objects.filter(project=project).exclude(status="deleted").count()
    cases = {
        "api_first_100": (api, f"{API}?limit=100"),
        "api_offset_9000": (api, f"{API}?limit=100&offset={min(9000, max(0, visible - 100))}"),
        "api_filter_status_in_use": (api, f"{API}?limit=100&status=in-use"),
        "api_filter_name_icontains": (api, f"{API}?limit=100&name__icontains=vol-09"),
        "api_order_by_size": (api, f"{API}?limit=100&ordering=size"),
    }
    h.emit(
        {
            "benchmark": "volume_list",
            **h.setup_label(settings),
            "volumes": args.volumes,
            "visible": visible,
            "runs": args.runs,
            "populate_s": round(populate_s, 1),
            "requests": measure(cases, args.runs),
            "target": {"api_first_100_p50_ms": 50},
        }
    )


if __name__ == "__main__":
    main()
