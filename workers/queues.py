"""Queue names of the asynchronous plane, in one place."""

CONDUCTOR = "conductor"
BROADCAST = "hosts.broadcast"
HOST_QUEUE_KINDS = ("compute", "storage", "network")


def host_queue(role: str, host: str) -> str:
    """The queue of one role on one host (``compute.<host>``, ``storage.<host>``, ``network.<host>``):
    that host's agent alone consumes it. An unknown role is a bug, refused rather than sent nowhere."""
    if role not in HOST_QUEUE_KINDS:
        raise ValueError(f"unknown host role {role!r} (one of {', '.join(HOST_QUEUE_KINDS)})")
    return f"{role}.{host}"


def host_queues(host: str, roles: list[str] | tuple[str, ...] = HOST_QUEUE_KINDS) -> list[str]:
    """The queues one host's agent consumes: one per role it carries."""
    return [host_queue(role, host) for role in HOST_QUEUE_KINDS if role in roles]


def broker_has_fanout(broker_url: str) -> bool:
    """kombu's filesystem transport delivers nothing to Broadcast queues (measured); Redis and AMQP do."""
    return broker_url.split(":", 1)[0] in {"redis", "rediss", "amqp", "amqps", "pyamqp"}
