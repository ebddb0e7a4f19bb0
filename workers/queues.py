"""Queue names of the asynchronous plane, in one place."""

CONDUCTOR = "conductor"
BROADCAST = "hosts.broadcast"
HOST_QUEUE_KINDS = ("compute", "storage", "network")


def compute_queue(host: str) -> str:
    return f"compute.{host}"


def storage_queue(host: str) -> str:
    return f"storage.{host}"


def network_queue(host: str) -> str:
    return f"network.{host}"


def host_queues(host: str, roles: list[str] | tuple[str, ...] = HOST_QUEUE_KINDS) -> list[str]:
    """The queues one host's agent consumes: one per role it carries."""
    return [f"{kind}.{host}" for kind in HOST_QUEUE_KINDS if kind in roles]


def broker_has_fanout(broker_url: str) -> bool:
    """kombu's filesystem transport delivers nothing to Broadcast queues (measured); Redis and AMQP do."""
    return broker_url.split(":", 1)[0] in {"redis", "rediss", "amqp", "amqps", "pyamqp"}
