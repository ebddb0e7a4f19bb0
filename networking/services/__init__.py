"""Every networking state change: networks and subnets (``networks``), address math and allocation
(``ipam``), ports and what compute calls for its instances (``ports``), floating IPs
(``floating``), security groups and rules (``security``), and the declared lifecycles and the host
messages built from the models (``lifecycle``)."""

from .floating import *  # noqa: F403
from .lifecycle import *  # noqa: F403
from .networks import *  # noqa: F403
from .ports import *  # noqa: F403
from .security import *  # noqa: F403
