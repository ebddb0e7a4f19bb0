"""Every storage state change: volumes and snapshots (``volumes``), their declared lifecycles
(``lifecycle``), volume types and the storage hosts' backends (``backends``), and the hooks compute
registers for what only it knows (images)."""

from .backends import *  # noqa: F403
from .hooks import *  # noqa: F403
from .lifecycle import *  # noqa: F403
from .volumes import *  # noqa: F403
