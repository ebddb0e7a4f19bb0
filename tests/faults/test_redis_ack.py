"""Acking a message after its Redis connection died (issue 14: the conductor stopped for good with
``AttributeError: 'NoneType' object has no attribute 'hostname'`` in ``ack_log_error``).

With ``acks_late`` a task running when the broker went away is acknowledged after the worker
reconnected, on its old channel, whose transport was closed. Real Redis and kombu connections.
"""

from __future__ import annotations

import logging
import time

import pytest
from kombu import Connection, Exchange, Queue

from workers.broker import RedisTransport

pytestmark = pytest.mark.faults

VISIBILITY = 1


def _connection(url: str) -> Connection:
    return Connection(
        url,
        transport=RedisTransport,
        transport_options={"visibility_timeout": VISIBILITY, "unacked_restore_throttle": 1},
    )


def test_an_ack_on_a_closed_connection_is_logged_and_the_message_comes_back(redis_server, caplog):
    queue = Queue("ack-test", Exchange("ack-test"), routing_key="ack-test")
    with _connection(redis_server.url) as producer_conn:
        producer_conn.Producer().publish(
            {"n": 1}, exchange=queue.exchange, routing_key="ack-test", declare=[queue]
        )

    conn = _connection(redis_server.url)
    received = []
    with conn.Consumer(queue, callbacks=[lambda body, message: received.append(message)], accept=["json"]):
        conn.drain_events(timeout=5)
    assert len(received) == 1
    message = received[0]
    # The state of the conductor's traceback: the connection this message came over died and was
    # closed (kombu's Connection._do_close_transport drops the transport's client), and the channel's
    # pools with it; the task that held the message finishes only now and acknowledges it.
    message.channel._disconnect_pools()
    message.channel.connection.client = None

    with caplog.at_level(logging.CRITICAL):
        # kombu's own Redis transport raises AttributeError: 'NoneType' object has no attribute
        # 'hostname' here, which no caller catches.
        message.ack_log_error(logging.getLogger("test"), conn.connection_errors)
    assert "Couldn't ack" in caplog.text

    # Not acknowledged, so not lost: another consumer gets it back after the visibility timeout.
    time.sleep(VISIBILITY + 0.5)
    again = []
    with _connection(redis_server.url) as conn2:
        conn2.default_channel.qos.restore_visible(num=10, interval=1)
        with conn2.Consumer(
            queue, callbacks=[lambda body, m: (again.append(body), m.ack())], accept=["json"]
        ):
            conn2.drain_events(timeout=5)
    assert again == [{"n": 1}]
    # Closing that channel (what Celery's consumer does on a connection loss) restores what it holds:
    # kombu's transport raised the same AttributeError there, and the worker stopped. A connection
    # error is what Celery ignores while it closes a connection that died.
    with pytest.raises(conn.connection_errors):
        message.channel.close()
