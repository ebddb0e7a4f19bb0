"""The embedded broker: kombu's filesystem transport, with message files that appear whole.

kombu's ``filesystem`` transport creates a message file under its final name and writes it
afterwards; a consumer polling in between (every 20 ms here) takes the still-empty file, fails
to decode it and the Celery worker stops with "Unrecoverable error: JSONDecodeError" (kombu
issue #1551; measured: 56 of 3,000 messages under CPU load). Here the message is written under
a name no consumer matches, then renamed into place, which is atomic on one file system.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put ``payload`` onto ``queue``: write ``.<name>.part``, then rename it to ``<name>``."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # Consumers select files by what follows the first dot ("<queue>.msg"): never this one.
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
