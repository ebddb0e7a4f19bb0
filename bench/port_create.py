"""Port create, the launch path's networking step: ``--ports`` ports on one /22 subnet, one by one,
through the service (``networking.services.create_port``: quota lock, port row, one fixed IP from
the pools) and through the native API (``POST /api/v1/networking/ports/`` in this process through
Django's test client: authentication, policy and the serializer on top); then ``--threads``
threads creating ports at once on a subnet with ``--free`` free addresses (exactly that many must
succeed, no address twice: the IPAM guarantee, measured rather than asserted).

Usage: .venv/bin/python bench/port_create.py [--ports 200] [--threads 50] [--free 20]
Embedded defaults unless DATABASE_URL is set (dropped and recreated: its name must contain "bench").
Prints JSON.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import threading
import time

import _harness as h


def settle(machine, obj):
    """The create transition settled as a network host answers it (no agent in this process)."""
    from workers.messages import NetworkResult

    obj = type(obj).objects.get(pk=obj.pk)
    answer = NetworkResult(ok=True, message="applied", simulated=True).as_dict()
    machine.settle(str(obj.operation_id), str(obj.pk), "create", answer)
    return type(obj).objects.get(pk=obj.pk)


def network_with_subnet(ctx, name: str, cidr: str, pool=None):
    from networking import services

    network, _ = services.create_network(ctx, name=name)
    network = settle(services.NETWORK_LIFECYCLE, network)
    services.create_subnet(ctx, network=network, cidr=cidr, allocation_pools=pool, sync=False)
    return network


def race(ctx_of, network, threads: int) -> dict:
    from django.db import connection

    from identity.errors import Conflict
    from networking import services

    outcomes: list[str] = []
    barrier = threading.Barrier(threads)

    def run():
        try:
            barrier.wait()
            services.create_port(ctx_of(), network=network)
            outcomes.append("created")
        except Conflict:
            outcomes.append("refused")
        except Exception as exc:  # counted and shown: the benchmark reports, it does not hide
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    t0 = time.perf_counter()
    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return {"seconds": round(time.perf_counter() - t0, 2), **{k: outcomes.count(k) for k in set(outcomes)}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=200)
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--free", type=int, default=20)
    args = parser.parse_args()

    settings = h.prepare("port-create")
    from django.test import Client
    from django.utils import timezone

    from identity import quotas
    from identity import services as identity
    from identity.context import build_context
    from networking import services
    from networking.models import IPAllocation
    from workers.models import Host

    user, project, password = h.bench_user()
    quotas.set_limits(
        project, {"networks": -1, "ports": -1, "security_groups": -1, "security_group_rules": -1}
    )
    Host.objects.create(name="net-1", roles=["network"], last_heartbeat=timezone.now())

    def ctx_of():
        return build_context(user, project)

    ctx = ctx_of()
    services.ensure_default_security_group(ctx)
    network = network_with_subnet(ctx, "bench-net", "10.20.0.0/22")
    service_ms = []
    for _ in range(args.ports):
        t0 = time.perf_counter()
        services.create_port(ctx, network=network)
        service_ms.append((time.perf_counter() - t0) * 1000)

    token = identity.issue_token(username=user.username, password=password, project=project.name).token
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    api_ms = []
    for _ in range(args.ports):
        t0 = time.perf_counter()
        response = api.post(
            "/api/v1/networking/ports/",
            json.dumps({"network": str(network.pk)}),
            content_type="application/json",
        )
        api_ms.append((time.perf_counter() - t0) * 1000)
        if response.status_code not in (201, 202):
            raise SystemExit(f"port create answered {response.status_code}: {response.content[:300]!r}")

    cidr = ipaddress.ip_network("10.30.0.0/24")
    first, last = cidr[10], cidr[10 + args.free - 1]
    tight = network_with_subnet(ctx, "tight", str(cidr), pool=[[str(first), str(last)]])
    outcome = race(ctx_of, tight, args.threads)
    addresses = list(IPAllocation.objects.filter(subnet__network=tight).values_list("address", flat=True))
    h.emit(
        {
            "benchmark": "port_create",
            **h.setup_label(settings),
            "ports": args.ports,
            "service": h.summary(service_ms),
            "api": h.summary(api_ms),
            "race": {
                "threads": args.threads,
                "free": args.free,
                **outcome,
                "allocated": len(addresses),
                "duplicates": len(addresses) - len(set(addresses)),
            },
            "target": {"port_create_p50_ms": 10},
        }
    )


if __name__ == "__main__":
    main()
