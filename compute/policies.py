"""Compute's default policy rules."""

from identity.policy import ADMIN, register_defaults

register_defaults(
    {
        "compute:flavor:list": "authenticated",
        "compute:flavor:show": "authenticated",
        "compute:flavor:create": ADMIN,
        "compute:flavor:update": ADMIN,
        "compute:flavor:delete": ADMIN,
        "compute:flavor:access": ADMIN,
        "compute:host:list": ADMIN,
        "compute:host:show": ADMIN,
        "compute:host:disable": ADMIN,
        "compute:host:enable": ADMIN,
    }
)
