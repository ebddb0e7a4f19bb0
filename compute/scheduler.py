"""The scheduler: which host gets an instance (DESIGN.md section 3, step 3).

Filters (host up and enabled, availability zone, image properties, the root volume's pool reaching
the host (boot from volume), enough vCPUs, RAM and disk under
the allocation ratios) and the weigher (spread: most free RAM first; pack: least first) are one SQL
query over the compute nodes (``ComputeNode`` joined to its ``workers.Host``). The claim is a
conditional UPDATE of the node that adds the instance's sizes to ``*_used`` only
while they still fit, so two schedulers racing for the last slot of a host never both win: the loser
moves on to the next candidate.

``explain`` evaluates the same rules per host in Python, for the "no valid host" fault and the
admins' dry run; tests hold the two to the same answers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from workers.models import Host

from .models import ComputeNode

SPREAD = "spread"
PACK = "pack"
WEIGHERS = (SPREAD, PACK)
# Candidates fetched per decision: enough to survive a burst of lost claims without a second query.
CANDIDATES = 8


@dataclass(frozen=True)
class Request:
    """What one instance needs from a host."""

    vcpus: int
    memory_mb: int
    disk_gb: int
    availability_zone: str = ""
    hypervisor_type: str = ""  # from the image's ``hypervisor_type`` property ("" = any)
    exclude: tuple[str, ...] = ()  # host names already tried (rescheduling)
    # Boot from volume: the compute hosts its root volume's pool reaches (None: any host).
    reaches: tuple[str, ...] | None = None

    @classmethod
    def for_instance(cls, instance, exclude=()) -> Request:
        properties = (instance.image.properties if instance.image_id else None) or {}
        return cls(
            vcpus=instance.vcpus,
            memory_mb=instance.memory_mb,
            disk_gb=instance.disk_gb,
            availability_zone=instance.availability_zone,
            hypervisor_type=str(properties.get("hypervisor_type", "")),
            exclude=tuple(exclude),
        )


@dataclass
class HostVerdict:
    host: str
    passed: bool
    reasons: list[str] = field(default_factory=list)
    free_vcpus: float = 0
    free_memory_mb: float = 0
    free_disk_gb: float = 0

    def as_dict(self) -> dict:
        return {
            "host": self.host,
            "passed": self.passed,
            "reasons": self.reasons,
            "free_vcpus": self.free_vcpus,
            "free_memory_mb": self.free_memory_mb,
            "free_disk_gb": self.free_disk_gb,
        }


class NoValidHost(Exception):
    """No host passes the filters; ``verdicts`` say why each one was rejected."""

    def __init__(self, verdicts: list[HostVerdict]):
        self.verdicts = verdicts
        super().__init__(self.summary())

    def summary(self, per_host: int = 20) -> str:
        """Each rejected host with its reasons; past ``per_host`` hosts, how many failed for each
        kind of reason, then the first ``per_host`` of them (a fault stays readable in a big cloud)."""
        if not self.verdicts:
            return "No valid host was found: no compute host is registered."
        rejected = [v for v in self.verdicts if not v.passed]
        parts = [f"{v.host}: {'; '.join(v.reasons)}" for v in rejected[:per_host]]
        if len(rejected) <= per_host:
            return "No valid host was found. " + " | ".join(parts)
        kinds = Counter(reason.split(":")[0].split(" (")[0] for v in rejected for reason in v.reasons)
        counted = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
        return (
            f"No valid host was found among {len(self.verdicts)} hosts ({counted}). "
            f"The first {per_host}: " + " | ".join(parts)
        )


def weigher() -> str:
    value = getattr(settings, "ZENITH_SCHEDULER_WEIGHER", SPREAD)
    return value if value in WEIGHERS else SPREAD


def free_capacity():
    """Annotations: what each host can still take under its allocation ratios."""
    return {
        "free_vcpus": F("vcpus") * F("cpu_allocation_ratio") - F("vcpus_used"),
        "free_memory_mb": F("memory_mb") * F("ram_allocation_ratio") - F("memory_mb_used"),
        "free_disk_gb": F("disk_gb") * F("disk_allocation_ratio") - F("disk_gb_used"),
    }


def candidates(request: Request, limit: int = CANDIDATES, now=None, weigh: str | None = None):
    """The hosts that pass every filter, best first: one SQL query."""
    now = now or timezone.now()
    qs = (
        ComputeNode.objects.filter(
            host__last_heartbeat__gte=now - settings.ZENITH_HOST_DOWN_AFTER, host__enabled=True
        )
        .annotate(**free_capacity())
        .filter(
            free_vcpus__gte=request.vcpus,
            free_memory_mb__gte=request.memory_mb,
            free_disk_gb__gte=request.disk_gb,
        )
    )
    if request.availability_zone:
        qs = qs.filter(host__availability_zone=request.availability_zone)
    if request.hypervisor_type:
        qs = qs.filter(hypervisor_type__iexact=request.hypervisor_type)
    if request.exclude:
        qs = qs.exclude(host__name__in=request.exclude)
    if request.reaches is not None:
        qs = qs.filter(host__name__in=request.reaches)
    order = "-free_memory_mb" if (weigh or weigher()) == SPREAD else "free_memory_mb"
    nodes = qs.select_related("host").order_by(order, "host__name").only("host__id", "host__name")
    return [node.host for node in nodes[:limit]]


def claim(host_id, request: Request) -> bool:
    """Add the request's sizes to the host's compute usage if they still fit (one conditional UPDATE;
    the host must still be enabled).

    The fit is checked on the updated row itself, never through a join (``Host.objects.enabled_for``
    says why: 20 racing schedulers once put 7 instances on a host with room for 5).
    """
    enabled = Host.objects.enabled_for("pk")
    fits = Q(vcpus_used__lte=F("vcpus") * F("cpu_allocation_ratio") - request.vcpus) & Q(
        memory_mb_used__lte=F("memory_mb") * F("ram_allocation_ratio") - request.memory_mb
    )
    fits &= Q(disk_gb_used__lte=F("disk_gb") * F("disk_allocation_ratio") - request.disk_gb)
    return bool(
        ComputeNode.objects.filter(fits, enabled, pk=host_id).update(
            vcpus_used=F("vcpus_used") + request.vcpus,
            memory_mb_used=F("memory_mb_used") + request.memory_mb,
            disk_gb_used=F("disk_gb_used") + request.disk_gb,
            updated=timezone.now(),
        )
    )


def release(host_id, vcpus: int, memory_mb: int, disk_gb: int) -> None:
    """Give back what a claim took (never below zero)."""
    ComputeNode.objects.filter(pk=host_id).update(
        vcpus_used=Greatest(F("vcpus_used") - vcpus, 0),
        memory_mb_used=Greatest(F("memory_mb_used") - memory_mb, 0),
        disk_gb_used=Greatest(F("disk_gb_used") - disk_gb, 0),
    )


def select_and_claim(request: Request, now=None) -> Host:
    """The best host that passes the filters, with the request claimed on it; NoValidHost otherwise.

    A lost claim (another scheduler took the room first) moves on to the next candidate; when every
    candidate was lost the query runs again, a bounded number of times.
    """
    for _round in range(3):
        hosts = candidates(request, now=now)
        if not hosts:
            break
        for host in hosts:
            if claim(host.pk, request):
                return host
    raise NoValidHost(explain(request, now=now))


def explain(request: Request, now=None) -> list[HostVerdict]:
    """Every host with pass or the reasons it fails, in the weigher's order (the admin's dry run)."""
    now = now or timezone.now()
    verdicts = []
    for node in ComputeNode.objects.annotate(**free_capacity()).select_related("host").order_by("host__name"):
        host = node.host
        reasons = []
        if request.exclude and host.name in request.exclude:
            reasons.append("already tried for this instance")
        if not host.is_up(now):
            reasons.append("host is down (no heartbeat)")
        if request.reaches is not None and host.name not in request.reaches:
            reached = ", ".join(request.reaches) or "no compute host"
            reasons.append(f"cannot reach the root volume's storage pool (it reaches {reached})")
        if not host.enabled:
            reasons.append(f"host is disabled ({host.disabled_reason})")
        if request.availability_zone and host.availability_zone != request.availability_zone:
            reasons.append(f"in availability zone {host.availability_zone}, not {request.availability_zone}")
        if request.hypervisor_type and node.hypervisor_type.lower() != request.hypervisor_type.lower():
            reasons.append(
                f"hypervisor is {node.hypervisor_type or 'unknown'}, image needs {request.hypervisor_type}"
            )
        if node.free_vcpus < request.vcpus:
            reasons.append(f"not enough vCPUs: {_n(node.free_vcpus)} free, {request.vcpus} needed")
        if node.free_memory_mb < request.memory_mb:
            reasons.append(
                f"not enough RAM: {_n(node.free_memory_mb)} MB free, {request.memory_mb} MB needed"
            )
        if node.free_disk_gb < request.disk_gb:
            reasons.append(f"not enough disk: {_n(node.free_disk_gb)} GB free, {request.disk_gb} GB needed")
        verdicts.append(
            HostVerdict(
                host=host.name,
                passed=not reasons,
                reasons=reasons,
                free_vcpus=_n(node.free_vcpus),
                free_memory_mb=_n(node.free_memory_mb),
                free_disk_gb=_n(node.free_disk_gb),
            )
        )
    passing = [v for v in verdicts if v.passed]
    passing.sort(key=lambda v: (-v.free_memory_mb if weigher() == SPREAD else v.free_memory_mb, v.host))
    return passing + [v for v in verdicts if not v.passed]


def _n(value: float) -> float:
    """Whole numbers as ints (free capacity reads better as 12 than 12.0)."""
    return int(value) if float(value).is_integer() else round(float(value), 1)
