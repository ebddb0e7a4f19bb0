"""services: the ledger's transitions, their idempotency, the sweeper and host.ping's policy."""

import io
import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from identity.context import system_context
from identity.errors import InvalidInput, PolicyDenied
from workers import queues, services
from workers.models import Operation
from workers.signals import operation_failed

from .conftest import make_operation

pytestmark = pytest.mark.django_db


def reload(op: Operation) -> Operation:
    return Operation.objects.get(pk=op.pk)


# --- start / progress / succeed / fail ------------------------------------------------------------


def test_start_marks_pending_running():
    op = make_operation()
    started = services.start(op.pk)
    assert started.pk == op.pk
    assert started.state == Operation.RUNNING
    assert started.started_at is not None


def test_start_again_while_running_keeps_the_first_start():
    op = make_operation()
    first = services.start(op.pk)
    again = services.start(op.pk)  # a redelivered message: the task may run again (it is idempotent)
    assert again is not None
    assert again.state == Operation.RUNNING
    assert again.started_at == first.started_at


@pytest.mark.parametrize("state", [Operation.SUCCEEDED, Operation.FAILED])
def test_start_of_a_finished_operation_is_none_and_changes_nothing(state):
    op = make_operation(state=state, message="done")
    assert services.start(op.pk) is None
    row = reload(op)
    assert row.state == state
    assert row.started_at is None


def test_start_of_an_unknown_operation_is_none():
    assert services.start("00000000-0000-0000-0000-000000000000") is None


def test_progress_is_monotonic_and_clamped():
    op = make_operation(state=Operation.RUNNING)
    services.report_progress(op.pk, 30, "fetched 30%")
    assert (reload(op).progress, reload(op).message) == (30, "fetched 30%")

    services.report_progress(op.pk, 20, "late, out-of-order report")
    assert (reload(op).progress, reload(op).message) == (30, "fetched 30%")

    services.report_progress(op.pk, 30)  # same percent, no message: message kept
    assert (reload(op).progress, reload(op).message) == (30, "fetched 30%")

    services.report_progress(op.pk, 250, "over the top")
    assert reload(op).progress == 100
    services.report_progress(op.pk, -5)
    assert reload(op).progress == 100


def test_progress_is_ignored_unless_running():
    pending = make_operation()
    services.report_progress(pending.pk, 50, "too early")
    assert (reload(pending).progress, reload(pending).message) == (0, "")

    done = make_operation(state=Operation.RUNNING)
    assert services.succeed(done.pk, result={"ok": True}, message="done")
    services.report_progress(done.pk, 60, "too late")
    assert (reload(done).progress, reload(done).message) == (100, "done")


def test_succeed_records_result_and_finishes():
    op = make_operation(state=Operation.RUNNING, progress=40)
    assert services.succeed(op.pk, result={"ok": True, "host": "h"}, message="pong from h") is True
    row = reload(op)
    assert row.state == Operation.SUCCEEDED
    assert row.finished
    assert row.progress == 100
    assert row.result == {"ok": True, "host": "h"}
    assert row.message == "pong from h"
    assert row.finished_at is not None


def test_succeed_from_pending_is_allowed():
    op = make_operation()
    assert services.succeed(op.pk) is True
    assert reload(op).state == Operation.SUCCEEDED


def test_fail_records_reason_and_truncates_it():
    op = make_operation(state=Operation.RUNNING)
    assert services.fail(op.pk, "x" * 5000, result={"ok": False}) is True
    row = reload(op)
    assert row.state == Operation.FAILED
    assert row.message == "x" * 4000
    assert row.result == {"ok": False}
    assert row.finished_at is not None


def test_succeed_after_fail_returns_false_and_changes_nothing():
    op = make_operation(state=Operation.RUNNING)
    assert services.fail(op.pk, "Deadline exceeded: gave up") is True
    before = reload(op)
    assert services.succeed(op.pk, result={"ok": True}, message="pong") is False
    after = reload(op)
    assert after.state == Operation.FAILED
    assert after.message == "Deadline exceeded: gave up"
    assert after.result is None
    assert after.finished_at == before.finished_at
    assert after.updated == before.updated


def test_fail_after_succeed_and_twice_returns_false():
    op = make_operation(state=Operation.RUNNING)
    assert services.succeed(op.pk, message="ok") is True
    assert services.fail(op.pk, "too late") is False
    assert services.succeed(op.pk, message="again") is False
    row = reload(op)
    assert (row.state, row.message) == (Operation.SUCCEEDED, "ok")


def test_unfinished_queryset():
    states = [Operation.PENDING, Operation.RUNNING, Operation.SUCCEEDED, Operation.FAILED]
    ops = {state: make_operation(state=state) for state in states}
    assert set(Operation.objects.unfinished()) == {ops[Operation.PENDING], ops[Operation.RUNNING]}


# --- sweep --------------------------------------------------------------------------------------------


def backdate(op: Operation, *, sent_ago=None, created_ago=None, **fields) -> Operation:
    """Move an operation's timestamps into the past (auto_now_add cannot be set on create)."""
    now = timezone.now()
    if sent_ago is not None:
        fields["sent_at"] = now - sent_ago
    if created_ago is not None:
        fields["created"] = now - created_ago
    Operation.objects.filter(pk=op.pk).update(**fields)
    return reload(op)


@pytest.fixture
def failed_signals():
    received = []

    def receiver(sender, operation, **kwargs):
        received.append(operation)

    operation_failed.connect(receiver)
    yield received
    operation_failed.disconnect(receiver)


def test_sweep_resends_an_operation_never_picked_up(sent):
    stale = settings.ZENITH_OPERATION_RESEND_AFTER + timedelta(seconds=1)
    op = backdate(make_operation(payload={"host": "h"}), sent_ago=stale, created_ago=stale, send_count=1)

    report = services.sweep()

    assert report.as_dict() == {"resent": 1, "failed": 0, "redriven": 0}
    row = reload(op)
    assert row.state == Operation.PENDING
    assert row.send_count == 2
    assert row.sent_at > op.sent_at
    assert [(m.task_id, m.queue, m.kwargs) for m in sent] == [
        (str(op.pk), queues.CONDUCTOR, {"operation_id": str(op.pk), "host": "h"})
    ]


def test_sweep_resends_an_operation_whose_send_failed(sent):
    stale = settings.ZENITH_OPERATION_RESEND_AFTER + timedelta(seconds=1)
    op = backdate(make_operation(), created_ago=stale, send_count=1)  # sent_at None: the broker was down
    assert services.sweep().resent == 1
    assert reload(op).send_count == 2
    assert len(sent) == 1


def test_sweep_leaves_recently_sent_operations_alone(sent):
    op = make_operation(send_count=1, sent_at=timezone.now())
    assert services.sweep().as_dict() == {"resent": 0, "failed": 0, "redriven": 0}
    assert reload(op).send_count == 1
    assert sent == []


def test_sweep_stops_resending_after_max_sends(sent):
    stale = settings.ZENITH_OPERATION_RESEND_AFTER + timedelta(seconds=1)
    op = backdate(
        make_operation(),
        sent_ago=stale,
        created_ago=stale,
        send_count=settings.ZENITH_OPERATION_MAX_SENDS,
    )
    assert services.sweep().as_dict() == {"resent": 0, "failed": 0, "redriven": 0}
    row = reload(op)
    assert row.state == Operation.PENDING
    assert row.send_count == settings.ZENITH_OPERATION_MAX_SENDS
    assert sent == []


def test_sweep_fails_a_pending_operation_past_its_deadline(sent, failed_signals):
    op = make_operation(
        kind="host.ping",
        queue="compute.ghost",
        send_count=3,
        sent_at=timezone.now(),
        deadline=timezone.now() + timedelta(seconds=5),
    )

    report = services.sweep(now=op.deadline + timedelta(seconds=1))

    assert report.as_dict() == {"resent": 0, "failed": 1, "redriven": 0}
    row = reload(op)
    assert row.state == Operation.FAILED
    assert "Deadline exceeded" in row.message
    assert "compute.ghost" in row.message
    assert "3 time(s)" in row.message
    assert row.finished_at is not None
    assert [o.pk for o in failed_signals] == [op.pk]
    assert failed_signals[0].state == Operation.FAILED
    assert failed_signals[0].message == row.message
    assert sent == []  # past its deadline: failed, never re-sent


def test_sweep_fails_a_running_operation_past_its_deadline(failed_signals):
    op = make_operation(
        kind="host.ping",
        state=Operation.RUNNING,
        message="sent to compute.ghost",
        deadline=timezone.now() - timedelta(seconds=1),
    )
    assert services.sweep().failed == 1
    row = reload(op)
    assert row.state == Operation.FAILED
    assert "Deadline exceeded" in row.message
    assert "did not finish in time" in row.message
    assert "compute.ghost" in row.message  # the last step it reached is kept in the reason
    assert [o.pk for o in failed_signals] == [op.pk]


def test_sweep_leaves_finished_operations_untouched(sent, failed_signals):
    long_ago = timedelta(days=2)
    done = backdate(
        make_operation(
            state=Operation.SUCCEEDED, message="pong", result={"ok": True}, deadline=timezone.now()
        ),
        sent_ago=long_ago,
        created_ago=long_ago,
    )
    failed = backdate(
        make_operation(state=Operation.FAILED, message="boom", deadline=timezone.now()),
        sent_ago=long_ago,
        created_ago=long_ago,
    )

    assert services.sweep(now=timezone.now() + long_ago).as_dict() == {
        "resent": 0,
        "failed": 0,
        "redriven": 0,
    }

    for before in (done, failed):
        after = reload(before)
        assert (after.state, after.message, after.result, after.send_count, after.updated) == (
            before.state,
            before.message,
            before.result,
            before.send_count,
            before.updated,
        )
    assert sent == []
    assert failed_signals == []


def test_sweep_handles_a_mixed_ledger_in_one_pass(sent, failed_signals):
    stale = settings.ZENITH_OPERATION_RESEND_AFTER + timedelta(seconds=1)
    resend = backdate(make_operation(), sent_ago=stale, created_ago=stale, send_count=1)
    overdue = make_operation(deadline=timezone.now() - timedelta(seconds=1), send_count=1)
    fresh = make_operation(sent_at=timezone.now(), send_count=1)

    assert services.sweep().as_dict() == {"resent": 1, "failed": 1, "redriven": 0}
    assert reload(resend).send_count == 2
    assert reload(overdue).state == Operation.FAILED
    assert reload(fresh).send_count == 1
    assert [m.task_id for m in sent] == [str(resend.pk)]
    assert [o.pk for o in failed_signals] == [overdue.pk]


def test_sweep_operations_command_prints_json(sent):
    make_operation(deadline=timezone.now() - timedelta(seconds=1))
    out = io.StringIO()
    call_command("sweep_operations", stdout=out)
    assert json.loads(out.getvalue()) == {"resent": 0, "failed": 1, "redriven": 0}

    out = io.StringIO()
    call_command("sweep_operations", stdout=out)
    assert json.loads(out.getvalue()) == {"resent": 0, "failed": 0, "redriven": 0}


def test_sweep_operations_task_runs_the_sweeper(sent):
    from workers import tasks

    make_operation(deadline=timezone.now() - timedelta(seconds=1))
    assert tasks.sweep_operations() == {"resent": 0, "failed": 1, "redriven": 0}


# --- host.ping: policy, validation, conductor step, callbacks ------------------------------------------


@pytest.mark.parametrize("who", ["member", "reader", "other_member"])
def test_ping_host_is_for_cloud_admins_only(cloud, who):
    with pytest.raises(PolicyDenied):
        services.ping_host(cloud.ctx(getattr(cloud, who)), "host-a")
    assert not Operation.objects.exists()


@pytest.mark.parametrize("name", ["", "bad host", "a/b", "h;rm", "é", "x" * 64])
def test_ping_host_rejects_bad_host_names(cloud, name):
    with pytest.raises(InvalidInput):
        services.ping_host(cloud.ctx(cloud.admin), name)
    assert not Operation.objects.exists()


def test_ping_host_by_an_admin_records_the_operation(cloud, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        op = services.ping_host(cloud.ctx(cloud.admin), "host-a.example_1")
    op.refresh_from_db()
    assert op.kind == "host.ping"
    assert op.queue == queues.CONDUCTOR
    assert op.task_name == "workers.tasks.ping_host"
    assert op.payload == {"host": "host-a.example_1", "role": "compute"}
    assert op.resource_type == "host"
    assert op.project == cloud.admin_project
    assert op.user == cloud.admin
    assert [(m.name, m.queue, m.task_id) for m in sent] == [
        ("workers.tasks.ping_host", queues.CONDUCTOR, str(op.pk))
    ]


def test_validate_host_name_accepts_63_characters():
    assert services.validate_host_name("h" * 63) == "h" * 63


def test_conductor_ping_step_forwards_to_the_host_queue(sent):
    from workers import tasks

    op = make_operation(kind="host.ping", payload={"host": "host-a"})
    tasks.ping_host(operation_id=str(op.pk), host="host-a")

    row = reload(op)
    assert row.state == Operation.RUNNING
    assert row.progress == 10
    assert row.message == "sent to compute.host-a"
    (message,) = sent
    assert message.name == "workers.agent.tasks.ping"
    assert message.queue == "compute.host-a"
    assert message.kwargs == {"nonce": str(op.pk)}
    link, link_error = message.options["link"], message.options["link_error"]
    assert link.task == "workers.tasks.transition_done"
    assert link.kwargs == {"operation_id": str(op.pk)}
    assert link.options["queue"] == queues.CONDUCTOR
    assert link_error.task == "workers.tasks.host_task_failed"
    assert link_error.options["queue"] == queues.CONDUCTOR


def test_conductor_ping_step_of_a_finished_operation_sends_nothing(sent):
    from workers import tasks

    op = make_operation(kind="host.ping", state=Operation.FAILED)
    tasks.ping_host(operation_id=str(op.pk), host="host-a")
    assert sent == []
    assert reload(op).state == Operation.FAILED


def test_host_callbacks_finish_the_operation():
    from workers import tasks

    ok = make_operation(state=Operation.RUNNING)
    tasks.transition_done({"ok": True, "host": "h", "message": "pong from h"}, operation_id=str(ok.pk))
    assert (reload(ok).state, reload(ok).message) == (Operation.SUCCEEDED, "pong from h")

    refused = make_operation(state=Operation.RUNNING)
    tasks.transition_done({"ok": False, "error": "no such domain"}, operation_id=str(refused.pk))
    assert (reload(refused).state, reload(refused).message) == (Operation.FAILED, "no such domain")

    crashed = make_operation(state=Operation.RUNNING)
    tasks.host_task_failed("00000000-0000-0000-0000-000000000001", operation_id=str(crashed.pk))
    assert reload(crashed).state == Operation.FAILED
    assert reload(crashed).message.startswith("The host task crashed")


def test_ping_host_command_rejects_a_bad_name():
    with pytest.raises(CommandError, match="Host names"):
        call_command("ping_host", "bad host")


def test_ping_host_command_reports_a_host_that_does_not_answer(sent):
    # Inside the test's transaction nothing commits, so nothing is sent and nobody answers.
    with pytest.raises(CommandError, match="did not answer"):
        call_command("ping_host", "host-a", "--timeout", "0.1", stdout=io.StringIO())
    assert Operation.objects.get().state == Operation.PENDING


def test_system_context_operations_have_no_project(sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        op = services.ping_host(system_context(), "host-a")
    assert op.project is None
    assert op.user is None


def test_agent_command_refuses_a_bad_host_name_before_starting_a_worker():
    with pytest.raises(CommandError, match="Host names"):
        call_command("agent", "--host", "bad/host")


def test_sweep_redrives_a_running_instance_operation_that_went_silent(sent):
    """A broker restarted empty lost the step's message: the running operation is sent again."""
    silent = settings.ZENITH_OPERATION_REDRIVE_AFTER + timedelta(seconds=1)
    op = make_operation(
        kind="instance.create", task_name="compute.tasks.build_instance", state=Operation.RUNNING
    )
    op = backdate(op, sent_ago=silent, created_ago=silent, send_count=1, updated=timezone.now() - silent)

    assert services.sweep().redriven == 1
    row = reload(op)
    assert (row.state, row.send_count) == (Operation.RUNNING, 2)
    assert [(m.task_id, m.kwargs) for m in sent] == [(str(op.pk), {"operation_id": str(op.pk)})]


def test_sweep_leaves_running_operations_with_recent_progress_or_of_other_kinds_alone(sent):
    silent = settings.ZENITH_OPERATION_REDRIVE_AFTER + timedelta(seconds=1)
    busy = make_operation(kind="instance.create", state=Operation.RUNNING)
    busy = backdate(busy, sent_ago=silent, created_ago=silent, send_count=1, updated=timezone.now() - silent)
    services.report_progress(busy.pk, 50, "fetching image")  # a sign of life
    other = make_operation(kind="host.ping", state=Operation.RUNNING)
    backdate(other, sent_ago=silent, created_ago=silent, send_count=1, updated=timezone.now() - silent)

    assert services.sweep().redriven == 0
    assert sent == []
