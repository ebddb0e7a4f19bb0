"""Identity's default policy rules."""

from .policy import ADMIN, MEMBER, OWNER, READER, register_defaults

register_defaults(
    {
        "identity:project:list": "authenticated",
        "identity:project:show": "authenticated",
        "identity:project:create": ADMIN,
        "identity:project:update": ADMIN,
        "identity:project:delete": ADMIN,
        "identity:user:list": ADMIN,
        "identity:user:create": ADMIN,
        "identity:user:update": ADMIN,
        "identity:user:delete": ADMIN,
        "identity:role:list": "authenticated",
        "identity:role_assignment:list": "authenticated",
        "identity:role_assignment:create": ADMIN,
        "identity:role_assignment:delete": ADMIN,
        "identity:quota:show": READER,
        "identity:quota:update": ADMIN,
        "identity:keypair:list": "authenticated",
        "identity:keypair:create": MEMBER,
        "identity:keypair:delete": OWNER,
        "identity:action:list": ADMIN,
        "identity:token:list": "authenticated",
        "identity:token:show": "authenticated",
        "workers:operation:list": READER,
        "workers:operation:show": READER,
        "workers:host:ping": ADMIN,
    }
)
