"""Every compute state change, one module per resource: flavors, hosts, images, instances; the
instance's declared lifecycle, the conductor's decisions and power sync beside them.

Each function takes the caller's Context first, checks policy, validates, and writes in one
transaction. Views (dashboard and API) and conductor tasks only parse input and call these.
"""

from .conductor import *  # noqa: F403
from .flavors import *  # noqa: F403
from .flavors import SEEDED_FLAVORS, SIZE_FIELDS  # noqa: F401
from .hosts import *  # noqa: F403
from .images import *  # noqa: F403
from .instances import *  # noqa: F403
from .lifecycle import *  # noqa: F403
from .power import *  # noqa: F403
from .snapshots import *  # noqa: F403
from .volumes import *  # noqa: F403
