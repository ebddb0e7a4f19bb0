"""What an agent process knows about itself: its host name (set by ``manage.py agent``)."""

import os
import socket

HOST_ENV = "ZENITH_AGENT_HOST"


def host_name() -> str:
    return os.environ.get(HOST_ENV) or socket.gethostname()
