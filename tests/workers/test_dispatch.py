"""dispatch: the Operation row is written in the caller's transaction and published only on commit."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.common import Broadcast

from identity.context import system_context
from workers import dispatch, queues
from workers.models import Operation

from .conftest import make_operation


class Boom(Exception):
    pass


def enqueue_ping(ctx=None, **overrides):
    arguments = {
        "kind": "host.ping",
        "task": "workers.tasks.ping_host",
        "kwargs": {"host": "host-a"},
        "resource_type": "host",
    }
    arguments.update(overrides)
    return dispatch.enqueue(ctx or system_context(), **arguments)


def test_enqueue_writes_the_row_at_once_and_sends_only_on_commit(
    db, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        op = enqueue_ping()
        # The row exists inside the caller's transaction, nothing has left yet.
        row = Operation.objects.get(pk=op.pk)
        assert row.state == Operation.PENDING
        assert row.send_count == 0
        assert row.sent_at is None
        assert sent == []

    assert len(callbacks) == 1
    assert len(sent) == 1
    message = sent[0]
    assert message.name == "workers.tasks.ping_host"
    assert message.queue == queues.CONDUCTOR
    assert message.task_id == str(op.pk)
    assert message.kwargs == {"operation_id": str(op.pk), "host": "host-a"}
    op.refresh_from_db()
    assert op.state == Operation.PENDING
    assert op.send_count == 1
    assert op.sent_at is not None


def test_rolled_back_transaction_leaves_no_row_and_sends_nothing(
    db, sent, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(Boom),
        transaction.atomic(),
    ):
        enqueue_ping()
        assert Operation.objects.count() == 1
        raise Boom

    assert callbacks == []
    assert sent == []
    assert not Operation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_real_commit_sends_and_real_rollback_does_not(sent):
    """The same with real transactions (no captured callbacks): on_commit fires on COMMIT only."""
    with pytest.raises(Boom), transaction.atomic():
        enqueue_ping()
        raise Boom
    assert sent == []
    assert not Operation.objects.exists()

    with transaction.atomic():
        op = enqueue_ping()
        assert sent == []
    assert [m.task_id for m in sent] == [str(op.pk)]
    assert Operation.objects.get(pk=op.pk).send_count == 1


def test_enqueue_records_who_what_and_when(db, cloud, sent, django_capture_on_commit_callbacks):
    ctx = cloud.ctx(cloud.member)
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        op = dispatch.enqueue(
            ctx,
            kind="instance.create",
            task="compute.tasks.create_instance",
            kwargs={"flavor": "m1.small"},
            queue=queues.host_queue("compute", "host-a"),
            resource_type="instance",
            deadline=timedelta(seconds=90),
        )
    op.refresh_from_db()
    assert op.project == cloud.project
    assert op.user == cloud.member
    assert op.request_id == ctx.request_id
    assert op.queue == "compute.host-a"
    assert op.payload == {"flavor": "m1.small"}
    assert before + timedelta(seconds=90) <= op.deadline <= timezone.now() + timedelta(seconds=90)
    assert sent[0].queue == "compute.host-a"
    assert sent[0].kwargs == {"operation_id": str(op.pk), "flavor": "m1.small"}


def test_enqueue_defaults(db, cloud, sent, django_capture_on_commit_callbacks):
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        op = enqueue_ping(system_context(), project=cloud.other_project)
    assert op.project == cloud.other_project
    assert op.user is None
    assert op.queue == queues.CONDUCTOR
    default = settings.ZENITH_OPERATION_DEFAULT_DEADLINE
    assert before + default <= op.deadline <= timezone.now() + default


def test_send_publishes_pending_operations_only(db, sent):
    pending = make_operation(payload={"host": "h"})
    assert dispatch.send(pending.pk) is True
    assert dispatch.send(pending.pk) is True  # a re-send (the sweeper's case)
    pending.refresh_from_db()
    assert pending.send_count == 2
    assert [m.task_id for m in sent] == [str(pending.pk)] * 2

    sent.clear()
    for state in (Operation.RUNNING, Operation.SUCCEEDED, Operation.FAILED):
        op = make_operation(state=state)
        assert dispatch.send(op.pk) is False
        op.refresh_from_db()
        assert op.send_count == 0
        assert op.sent_at is None
    assert sent == []


def test_send_with_the_broker_down_leaves_the_operation_to_the_sweeper(db, sent):
    op = make_operation()
    sent.fail_with = ConnectionError("broker unreachable")
    assert dispatch.send(op.pk) is False
    op.refresh_from_db()
    assert op.state == Operation.PENDING
    assert op.send_count == 1
    assert op.sent_at is None  # so the sweeper re-sends it on its next pass


def test_send_to_host_uses_the_host_queue_of_the_kind(sent):
    dispatch.send_to_host("workers.agent.tasks.ping", "host-a", kwargs={"nonce": "n"})
    dispatch.send_to_host("workers.agent.tasks.ping", "host-b", kwargs={}, queue_kind="storage", task_id="t1")
    assert [(m.queue, m.kwargs, m.task_id) for m in sent] == [
        ("compute.host-a", {"nonce": "n"}, None),
        ("storage.host-b", {}, "t1"),
    ]
    with pytest.raises(ValueError, match="unknown host role 'volume'"):
        dispatch.send_to_host("workers.agent.tasks.ping", "host-c", kwargs={}, queue_kind="volume")
    assert len(sent) == 2


def test_send_to_all_hosts_on_the_filesystem_broker_sends_one_message_per_host(sent, settings):
    settings.CELERY_BROKER_URL = "filesystem://"
    count = dispatch.send_to_all_hosts("workers.agent.tasks.ping", ["h1", "h2", "h3"], kwargs={"nonce": "x"})
    assert count == 3
    assert [m.queue for m in sent] == ["compute.h1", "compute.h2", "compute.h3"]
    assert all(m.kwargs == {"nonce": "x"} for m in sent)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/15", "amqp://guest@localhost//"])
def test_send_to_all_hosts_with_fanout_sends_one_broadcast(sent, settings, url):
    settings.CELERY_BROKER_URL = url
    assert dispatch.send_to_all_hosts("workers.agent.tasks.ping", ["h1", "h2"], kwargs={}) == 1
    (message,) = sent
    assert isinstance(message.queue, Broadcast)
    assert message.queue.exchange.name == queues.BROADCAST
    assert message.queue.exchange.type == "fanout"
    # Celery does not declare Broadcast queues itself; unless the fanout exchange is declared, kombu's
    # Redis transport routes it as direct (to one list nobody reads). Proven for real in tests/integration.
    assert message.options["declare"] == [message.queue.exchange]


def test_broker_has_fanout():
    assert not queues.broker_has_fanout("filesystem://")
    assert queues.broker_has_fanout("redis://localhost:6379/0")
    assert queues.broker_has_fanout("rediss://localhost:6380/0")
    assert queues.broker_has_fanout("amqp://guest@localhost//")
    assert queues.host_queues("h") == ["compute.h", "storage.h", "network.h"]
