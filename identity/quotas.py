"""Per-project quotas: limits (admin-set, defaulted from settings), usage and atomic enforcement.

Apps register how they count a resource with ``register_usage_counter``; identity never imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from django.conf import settings
from django.db import connection, transaction

from .errors import InvalidInput, QuotaExceeded
from .models import KeyPair, Project, Quota, QuotaLock, User
from .validators import MAX_INT

UNLIMITED = -1
MAX_LIMIT = MAX_INT  # Quota.limit is a 32-bit integer column
UsageCounter = Callable[[Project, "User | None"], int]
GroupCounter = Callable[[Project, "User | None"], Mapping[str, int]]
_counters: dict[str, UsageCounter] = {}
_group_counters: dict[str, GroupCounter] = {}


def resources() -> list[str]:
    """Every quota resource, in display order."""
    return list(settings.ZENITH_DEFAULT_QUOTAS)


def register_usage_counter(resource: str, counter: UsageCounter) -> None:
    """Tell quotas how to count ``resource`` in use for a project (and user, for per-user resources)."""
    if resource not in settings.ZENITH_DEFAULT_QUOTAS:
        raise ValueError(f"unknown quota resource {resource}")
    _counters[resource] = counter


def register_usage_counters(names: list[str], counter: GroupCounter) -> None:
    """Tell quotas how to count several resources at once (one query, e.g. an aggregate):
    ``counter(project, user)`` returns ``{resource: in_use}`` for each of ``names``."""
    for resource in names:
        if resource not in settings.ZENITH_DEFAULT_QUOTAS:
            raise ValueError(f"unknown quota resource {resource}")
        _counters.pop(resource, None)
        _group_counters[resource] = counter


def count_by_sql(project: Project, subqueries: Mapping[str, str]) -> dict[str, int]:
    """Several in-use counts of a project in ONE query (every page that shows quotas counts them):
    each value is a scalar ``SELECT`` with one ``%s``, the project's id."""
    names = list(subqueries)
    sql = "SELECT " + ", ".join(f"({subqueries[name]})" for name in names)
    pk = project.pk.hex if connection.vendor == "sqlite" else project.pk
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk] * len(names))
        row = cursor.fetchone()
    return {name: int(value or 0) for name, value in zip(names, row, strict=True)}


def _count(names, project: Project, user: User | None) -> dict[str, int]:
    """In-use counts of ``names``: each counter runs once, a group counter once for its whole group."""
    groups: dict[GroupCounter, Mapping[str, int]] = {}
    result = {}
    for res in names:
        if res in _group_counters:
            counter = _group_counters[res]
            if counter not in groups:
                groups[counter] = counter(project, user)
            result[res] = groups[counter][res]
        else:
            result[res] = _counters[res](project, user) if res in _counters else 0
    return result


def limits(project: Project) -> dict[str, int]:
    """The project's limit per resource: admin-set rows over the defaults (one query)."""
    result = dict(settings.ZENITH_DEFAULT_QUOTAS)
    result.update(Quota.objects.filter(project=project).values_list("resource", "limit"))
    return result


def usage(project: Project, user: User | None = None) -> dict[str, int]:
    """Resources in use; resources no app counts yet are 0 (one query per registered counter)."""
    return _count(resources(), project, user)


def summary(project: Project, user: User | None = None) -> list[dict]:
    """Limit, in-use and remaining per resource, for the API and the overview page."""
    lim, used = limits(project), usage(project, user)
    rows = []
    for res in resources():
        limit = lim[res]
        remaining = None if limit == UNLIMITED else max(limit - used[res], 0)
        rows.append({"resource": res, "limit": limit, "in_use": used[res], "remaining": remaining})
    return rows


def enforce(project: Project, deltas: Mapping[str, int], user: User | None = None) -> None:
    """Refuse, with a message naming each resource, if adding ``deltas`` would exceed a limit.

    Must run inside the transaction that creates the resources: it locks the project's quota row
    so that concurrent requests count one after the other and can never together overshoot.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("quotas.enforce must be called inside transaction.atomic()")
    # Lock the project's quota row; made first the once it does not exist yet (one statement, not two,
    # on every create: tests/compute/test_launch_budget.py).
    if (
        QuotaLock.objects.select_for_update().filter(project=project).values_list("pk", flat=True).first()
        is None
    ):
        QuotaLock.objects.get_or_create(project=project)
        QuotaLock.objects.select_for_update().get(project=project)
    lim = limits(project)
    over = []
    checked = [res for res, delta in deltas.items() if delta > 0 and lim[res] != UNLIMITED]
    counts = _count(checked, project, user)
    for res in checked:
        delta = deltas[res]
        in_use = counts[res]
        if in_use + delta > lim[res]:
            over.append(f"{res} (limit {lim[res]}, in use {in_use}, requested {delta})")
    if over:
        raise QuotaExceeded("Quota exceeded for " + ", ".join(over) + ".", details={"over": over})


def set_limits(project: Project, new_limits: Mapping[str, int]) -> dict[str, int]:
    """Store admin-set limits; validation happens here so every caller gets the same errors."""
    unknown = sorted(set(new_limits) - set(resources()))
    if unknown:
        raise InvalidInput(f"Unknown quota resource(s): {', '.join(unknown)}.")
    for res, value in new_limits.items():
        if isinstance(value, bool) or not isinstance(value, int) or not UNLIMITED <= value <= MAX_LIMIT:
            raise InvalidInput(
                f"Quota for {res} must be an integer >= -1 and <= {MAX_LIMIT} (-1 means unlimited)."
            )
    for res, value in new_limits.items():
        Quota.objects.update_or_create(project=project, resource=res, defaults={"limit": value})
    return limits(project)


register_usage_counter(
    "key_pairs", lambda project, user: KeyPair.objects.filter(user=user).count() if user else 0
)
