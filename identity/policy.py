"""Policy as data: ``action -> rule`` defaults in code, overridable from a YAML file.

A rule is a small expression over the request context::

    role:reader                  the caller holds reader (or a role that implies it) on its project
    is_admin                     the caller is a cloud admin
    owner                        the target's ``user_id`` is the caller's
    authenticated                any signed-in caller with a project
    @ / !                        always / never
    A or B, A and B              ``and`` binds tighter than ``or``

Roles imply each other: admin ⊇ member ⊇ reader. An action with no rule is denied.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml
from django.conf import settings

from .errors import PolicyDenied

if TYPE_CHECKING:
    from .context import Context

log = logging.getLogger(__name__)

IMPLIED_ROLES: Mapping[str, frozenset[str]] = {
    "admin": frozenset({"admin", "member", "reader"}),
    "member": frozenset({"member", "reader"}),
    "reader": frozenset({"reader"}),
}

ADMIN = "is_admin"
MEMBER = "role:member or is_admin"
READER = "role:reader or is_admin"
OWNER = "owner or is_admin"

_defaults: dict[str, str] = {}
_override_cache: dict[str, Any] = {"path": None, "mtime": None, "rules": {}}


def register_defaults(rules: Mapping[str, str]) -> None:
    """Add an app's default rules (called at import time of the app's ``policies`` module)."""
    _defaults.update(rules)


def effective_rules() -> dict[str, str]:
    """Defaults overlaid with the YAML override file named by ``ZENITH_POLICY_FILE``."""
    return {**_defaults, **_load_overrides()}


def _load_overrides() -> dict[str, str]:
    path = settings.ZENITH_POLICY_FILE
    if not path:
        return {}
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        log.error("policy file %s cannot be read; using defaults", path)
        return {}
    cache = _override_cache
    if cache["path"] != path or cache["mtime"] != mtime:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        if not isinstance(data, dict):
            raise ValueError(f"policy file {path} must map action names to rules")
        cache.update(path=path, mtime=mtime, rules={str(k): str(v) for k, v in data.items()})
    return cache["rules"]


def _term(ctx: Context, term: str, target: Any) -> bool:
    term = term.strip()
    if term == "@":
        return True
    if term in ("!", ""):
        return False
    if term == "is_admin":
        return ctx.is_admin
    if term == "authenticated":
        return ctx.user is not None
    if term == "owner":
        return target is not None and ctx.user is not None and getattr(target, "user_id", None) == ctx.user.pk
    if term.startswith("role:"):
        wanted = term[5:]
        return any(wanted in IMPLIED_ROLES.get(role, frozenset({role})) for role in ctx.roles)
    log.warning("unknown policy term %r is treated as false", term)
    return False


def evaluate(rule: str, ctx: Context, target: Any = None) -> bool:
    """True when ``rule`` holds for ``ctx`` (and ``target``, for ownership rules)."""
    return any(
        all(_term(ctx, term, target) for term in alternative.split(" and "))
        for alternative in rule.split(" or ")
    )


def check(ctx: Context, action: str, target: Any = None) -> bool:
    """True when the caller may perform ``action``."""
    rule = effective_rules().get(action)
    if rule is None:
        log.warning("no policy rule for %s: denied", action)
        return False
    return evaluate(rule, ctx, target)


def enforce(ctx: Context, action: str, target: Any = None) -> None:
    """Raise PolicyDenied unless the caller may perform ``action``."""
    if not check(ctx, action, target):
        raise PolicyDenied(f"Policy does not allow {action} for your role.", code="policy_denied")
