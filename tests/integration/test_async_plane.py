"""The asynchronous plane end to end: real conductor and agent processes on the configured broker.

Runs on the embedded defaults (SQLite file + kombu filesystem broker) and on PostgreSQL + Redis.
"""

from __future__ import annotations

import ast
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction

from identity.context import system_context
from workers import dispatch, queues, services
from workers.models import Operation
from workers.signals import operation_failed

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WAIT = 20.0  # every wait below is bounded by this
POLL = 0.02


def wait_for(predicate, what, timeout: float = WAIT):
    """Poll ``predicate`` until truthy; fail after ``timeout`` saying ``what`` (a str or a callable)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
        time.sleep(POLL)


def wait_finished(op: Operation, timeout: float = WAIT) -> Operation:
    def finished():
        op.refresh_from_db()
        return op.finished

    wait_for(finished, lambda: f"{op.kind} {op.pk} to finish (it is {op.state}: {op.message!r})", timeout)
    return op


def queued_messages(queue: str) -> int:
    """Messages waiting in ``queue`` on the configured broker, read from the broker itself."""
    if settings.CELERY_BROKER_URL.startswith("redis"):
        import redis

        return redis.Redis.from_url(settings.CELERY_BROKER_URL).llen(queue)
    folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
    return sum(1 for name in folder.iterdir() if name.name.endswith(f".{queue}.msg"))


def ping(host: str) -> Operation:
    return services.ping_host(system_context(), host)


def pong_results(log: str, nonce: str) -> list[dict]:
    """Return values the worker logged for ``workers.agent.tasks.ping`` calls carrying ``nonce``."""
    results = []
    for line in log.splitlines():
        if "Task workers.agent.tasks.ping[" in line and " succeeded in " in line and nonce in line:
            results.append(ast.literal_eval(line[line.index("{") :]))
    return results


def test_ping_goes_through_the_conductor_to_the_agent_and_back(plane):
    op = ping("host-a")
    assert op.state == Operation.PENDING

    wait_finished(op)

    assert op.state == Operation.SUCCEEDED, op.message
    assert op.result["ok"] is True
    assert op.result["host"] == "host-a"
    assert op.result["pid"] == plane.workers["agent-host-a"].pid
    assert op.result["nonce"] == str(op.pk)
    assert op.message == "pong from host-a"
    assert op.progress == 100
    assert op.send_count == 1
    assert op.sent_at <= op.started_at <= op.finished_at


def test_each_host_queue_is_consumed_by_that_hosts_agent_alone(plane):
    ops = [(host, ping(host)) for _ in range(3) for host in ("host-a", "host-b")]

    pids = {}
    for host, op in ops:
        wait_finished(op)
        assert op.state == Operation.SUCCEEDED, op.message
        assert op.result["host"] == host
        pids.setdefault(host, set()).add(op.result["pid"])

    assert pids == {
        "host-a": {plane.workers["agent-host-a"].pid},
        "host-b": {plane.workers["agent-host-b"].pid},
    }
    assert pids["host-a"] != pids["host-b"]


def test_ping_to_a_host_without_agent_is_failed_by_the_sweeper_naming_its_queue(plane):
    failed = []

    def receiver(sender, operation, **kwargs):
        failed.append(operation)

    op = ping("ghost")
    # The conductor takes it and forwards it to compute.ghost, where nobody listens.
    wait_for(
        lambda: Operation.objects.filter(pk=op.pk, state=Operation.RUNNING, progress=10).exists(),
        "the conductor to forward the ping",
    )
    time.sleep(0.5)
    op.refresh_from_db()
    assert op.state == Operation.RUNNING
    assert op.message == "sent to compute.ghost"
    assert queued_messages("compute.ghost") == 1

    operation_failed.connect(receiver)
    try:
        report = services.sweep(now=op.deadline + timedelta(seconds=1))
    finally:
        operation_failed.disconnect(receiver)

    assert report.failed == 1
    op.refresh_from_db()
    assert op.state == Operation.FAILED
    assert "Deadline exceeded" in op.message
    assert "compute.ghost" in op.message
    assert [o.pk for o in failed] == [op.pk]


def test_operation_on_a_queue_nobody_consumes_stays_pending_is_resent_then_failed(plane):
    """The outbox side: a host-queue operation nobody picks up is re-sent, then failed naming its queue."""
    with transaction.atomic():
        op = dispatch.enqueue(
            system_context(),
            kind="host.ping",
            task="workers.agent.tasks.ping",
            queue=queues.host_queue("compute", "nobody"),
            resource_type="host",
            deadline=timedelta(minutes=5),
        )
    time.sleep(0.5)
    op.refresh_from_db()
    assert (op.state, op.send_count) == (Operation.PENDING, 1)
    assert queued_messages("compute.nobody") == 1

    later = op.created + settings.ZENITH_OPERATION_RESEND_AFTER + timedelta(seconds=1)
    assert services.sweep(now=later).as_dict() == {"resent": 1, "failed": 0, "redriven": 0}
    op.refresh_from_db()
    assert (op.state, op.send_count) == (Operation.PENDING, 2)
    assert queued_messages("compute.nobody") == 2  # really published again

    assert services.sweep(now=op.deadline + timedelta(seconds=1)).as_dict() == {
        "resent": 0,
        "failed": 1,
        "redriven": 0,
    }
    op.refresh_from_db()
    assert op.state == Operation.FAILED
    assert "Deadline exceeded" in op.message
    assert "compute.nobody" in op.message
    assert "2 time(s)" in op.message


def test_send_to_all_hosts_reaches_every_running_agent(plane):
    nonce = f"all-{uuid.uuid4()}"
    hosts = ["host-a", "host-b"]

    messages = dispatch.send_to_all_hosts("workers.agent.tasks.ping", hosts, kwargs={"nonce": nonce})

    assert messages == (1 if queues.broker_has_fanout(settings.CELERY_BROKER_URL) else len(hosts))
    for host in hosts:
        worker = plane.workers[f"agent-{host}"]
        (result,) = wait_for(lambda w=worker: pong_results(w.log(), nonce), f"{host} to answer {nonce}")
        assert result["host"] == host
        assert result["pid"] == worker.pid
    assert nonce not in plane.log_of("conductor")


def test_operation_sent_while_the_conductor_is_down_runs_when_it_comes_up(plane):
    plane.stop("conductor")
    try:
        op = ping("host-b")
        time.sleep(0.5)
        op.refresh_from_db()
        assert (op.state, op.send_count) == (Operation.PENDING, 1)
        assert queued_messages(queues.CONDUCTOR) == 1
    finally:
        conductor = plane.launch_conductor()
        plane.start(conductor)

    wait_finished(op)
    assert op.state == Operation.SUCCEEDED, op.message
    assert op.result["host"] == "host-b"
    assert op.send_count == 1
    assert queued_messages(queues.CONDUCTOR) == 0
