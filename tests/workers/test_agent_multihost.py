"""A multi-host agent's side, in this process (no broker): each served host has its own libvirt
connection and directory, a task runs as the host of the queue that delivered it, the heartbeats go out
in batches, and power sync sends what changed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from celery.signals import task_postrun, task_prerun

from workers import processes, tasknames
from workers.agent import heartbeat, runtime, tasks

URI = processes.simulated_host_uri()


def domain(name: str) -> str:
    return f"<domain type='test'><name>{name}</name><memory>1024</memory><os><type>hvm</type></os></domain>"


@pytest.fixture
def hosts(monkeypatch, tmp_path):
    monkeypatch.setenv(runtime.VAR_ENV, str(tmp_path))
    monkeypatch.setenv(runtime.HOST_ENV, "env-host")
    served = [runtime.AgentHost(name, URI, ["compute"]) for name in processes.simulated_host_names(5, "u-")]
    runtime.configure_hosts(served)
    yield served
    runtime.close_hosts()


@pytest.fixture
def sent(monkeypatch):
    messages = []
    monkeypatch.setattr(
        heartbeat.current_app,
        "send_task",
        lambda name, kwargs=None, queue=None, **_: messages.append((name, kwargs)),
    )
    return messages


def test_each_host_has_its_own_hypervisor_state_and_directory(hosts, tmp_path):
    first, second = hosts[0], hosts[1]
    with runtime.serving(first):
        assert (runtime.host_name(), runtime.libvirt_uri(), runtime.roles()) == ("u-1", URI, ["compute"])
        assert runtime.driver() is first.driver()
        assert runtime.host_dir() == tmp_path / "agent" / "u-1"
        runtime.driver().conn.defineXML(domain("only-on-u-1"))
    with runtime.serving(second):
        assert runtime.host_name() == "u-2" and runtime.driver() is second.driver()
        assert "only-on-u-1" not in [d.name() for d in runtime.driver().conn.listAllDomains()]
    assert runtime.host_name() == "env-host"  # outside a task of a served host: the process's own


class Delivered(SimpleNamespace):
    """What Celery's task_prerun gets as its task: here only its request's delivery info."""

    __hash__ = object.__hash__


def test_a_task_runs_as_the_host_whose_queue_delivered_it(hosts):
    runtime.install_task_binding()
    for queue, expected in (
        ("compute.u-3", "u-3"),
        ("storage.u-3", "env-host"),
        ("compute.other", "env-host"),
    ):
        task = Delivered(request=SimpleNamespace(delivery_info={"routing_key": queue}))
        task_prerun.send(sender=task, task_id="t", task=task, args=(), kwargs={})
        try:
            assert tasks.ping.run()["host"] == expected, queue
        finally:
            task_postrun.send(sender=task, task_id="t", task=task, args=(), kwargs={}, retval=None, state="")
        assert runtime.current_host() is None


def test_heartbeats_go_out_in_batches_each_with_its_hosts_sections(hosts, sent):
    assert heartbeat.report_many(hosts, batch_size=2) == 5
    assert [name for name, _ in sent] == [tasknames.HOST_HEARTBEATS] * 3
    entries = [entry for _, kwargs in sent for entry in kwargs["batch"]]
    assert [e["host"] for e in entries] == ["u-1", "u-2", "u-3", "u-4", "u-5"]
    assert all(e["info"]["roles"] == ["compute"] and e["info"]["compute"]["vcpus"] == 16 for e in entries)
    assert {e["info"]["uri"] for e in entries} == {URI}


def test_report_host_by_broadcast_reports_every_served_host(hosts, sent):
    answer = tasks.report_host.run()
    assert answer["ok"] and answer["hosts"] == ["u-1", "u-2", "u-3", "u-4", "u-5"]
    assert [len(kwargs["batch"]) for _, kwargs in sent] == [5]


def test_power_sync_sends_what_changed_and_everything_in_turn(hosts, sent):
    last: dict = {}
    assert heartbeat.sync_many(hosts, last, tick=0, full_every=3) == 5  # nothing sent yet: all new
    sent.clear()
    assert heartbeat.sync_many(hosts, last, tick=1, full_every=3) == 1  # unchanged: only (1 + i) % 3 == 0
    assert [kwargs["host"] for _, kwargs in sent] == ["u-3"]
    sent.clear()
    with runtime.serving(hosts[0]):
        runtime.driver().conn.defineXML(domain("new-one"))
    heartbeat.sync_many(hosts, last, tick=2, full_every=3)
    assert "u-1" in [kwargs["host"] for name, kwargs in sent if name == tasknames.POWER_SYNC]


def test_events_of_a_guest_a_task_acts_on_are_not_forwarded(monkeypatch, sent):
    """A spawn's "started" (and any action's own events) are what its answer reports: not sent as
    events too, while the task runs and for a grace period after; other guests' events are."""
    callbacks = []
    fake = SimpleNamespace(
        listen_events=lambda cb: callbacks.append(cb) or 1, unlisten_events=lambda _id: None
    )
    monkeypatch.setattr(runtime, "driver", lambda uri=None: fake)
    monkeypatch.setattr(runtime, "ACTION_EVENT_GRACE", 0.2)
    heartbeat._listen("h1", "test:///x")
    try:
        [forward] = callbacks
        with runtime.acting_on("spawning"):
            forward("uuid-1", "spawning", "running", "started")
        forward("uuid-1", "spawning", "running", "started")  # within the grace period
        forward("uuid-2", "other", "shutdown", "stopped")
        forward("uuid-3", None, "running", "started")  # a domain no instance owns
        assert [(k["instance_id"], k["event"]) for _, k in sent] == [("other", "stopped")]
        import time

        time.sleep(0.3)
        forward("uuid-1", "spawning", "shutdown", "stopped")  # the guest stopped on its own, later
        assert [k["instance_id"] for _, k in sent] == ["other", "spawning"]
    finally:
        heartbeat.stop()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--simulate", "2", "--libvirt-uri", "test:///default"], "host description file"),
        (["--simulate", "2", "--libvirt-uri", "qemu:///system"], "host description file"),
        (["--simulate", "2", "--host", "h1"], "give no --host"),
        (["--simulate", "2", "--host-prefix", "bad name "], "Host names are"),
        (["--simulate", "-1"], "number of hosts"),
        ([], "give --host NAME"),
    ],
)
def test_agent_command_refuses_what_cannot_simulate_hosts(argv, message):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=message):
        call_command("agent", *argv)


def enroll_served(*names: str) -> dict[str, str]:
    """Enroll served hosts with key files where their agent looks; returns each host's key text."""
    from workers import hostauth, hostkeys, services

    done = services.enroll_hosts(list(names), key_file_for=lambda n: hostauth.key_path(runtime.var_dir(), n))
    hostkeys.forget()
    return {one.host: one.key for one in done}


@pytest.mark.django_db
def test_each_entry_of_a_batch_is_signed_by_its_host_and_one_signed_with_another_hosts_key_is_refused(
    hosts, sent, caplog
):
    from workers import hostauth
    from workers import tasks as worker_tasks
    from workers.models import Host

    keys = enroll_served("u-1", "u-2", "u-3")
    # u-2's key file holds u-1's key: its entry is signed with host A's key on behalf of host B.
    hostauth.write_key_file(hostauth.key_path(runtime.var_dir(), "u-2"), keys["u-1"])
    assert heartbeat.report_many(hosts[:3]) == 3
    [(name, kwargs)] = sent
    assert name == tasknames.HOST_HEARTBEATS and "auth" not in kwargs  # the message is no one host's
    assert [e["auth"]["host"] for e in kwargs["batch"]] == ["u-1", "u-2", "u-3"]
    report = worker_tasks.host_heartbeats.run(**kwargs)
    assert report == {"recorded": 2, "registered": 2, "rejected": 0, "refused": 1}
    assert sorted(Host.objects.values_list("name", flat=True)) == ["u-1", "u-3"]
    assert "refused workers.tasks.host_heartbeats (host=u-2)" in caplog.text


def test_storage_section_is_built_per_host_with_the_roles_of_the_process(monkeypatch, tmp_path):
    monkeypatch.setenv(runtime.VAR_ENV, str(tmp_path))
    served = [runtime.AgentHost(n, URI) for n in ("s-1", "s-2")]
    runtime.configure_hosts(served)
    try:
        infos = {}
        for host in served:
            with runtime.serving(host):
                infos[host.name] = heartbeat.heartbeat_info()[1]
    finally:
        runtime.close_hosts()
    assert all(info["roles"] == ["compute", "storage"] for info in infos.values())  # the default roles
    pools = {name: {b["pool"] for b in info["storage"]["backends"]} for name, info in infos.items()}
    assert pools["s-1"].isdisjoint(pools["s-2"]), pools  # each host's own backends


def test_what_a_task_publishes_is_signed_as_the_host_whose_queue_delivered_it(hosts):
    from workers import hostauth
    from workers.agent import signing

    keys = {n: hostauth.new_key() for n in ("u-1", "u-3")}

    for name, key in keys.items():
        hostauth.write_key_file(hostauth.key_path(runtime.var_dir(), name), key)
    runtime.install_task_binding()
    task = Delivered(request=SimpleNamespace(delivery_info={"routing_key": "compute.u-3"}))
    task_prerun.send(sender=task, task_id="t", task=task, args=(), kwargs={})
    try:
        body = ((), {"operation_id": "op"}, {})
        assert signing.sign_body(tasknames.TRANSITION_DONE, body)  # as the hook signs an answer
    finally:
        task_postrun.send(sender=task, task_id="t", task=task, args=(), kwargs={}, retval=None, state="")
    auth = body[1]["auth"]
    assert auth["host"] == "u-3"
    hostauth.verify(
        [hostauth.decode_key(keys["u-3"])], auth, tasknames.TRANSITION_DONE, (), {"operation_id": "op"}
    )


def test_power_reports_are_signed_as_their_host_from_any_thread(hosts, monkeypatch):
    from workers.agent import signing

    published = []
    monkeypatch.setattr(
        heartbeat.current_app,
        "send_task",
        lambda name, kwargs=None, queue=None, **_: published.append(signing.current_host()),
    )
    heartbeat.send_power_event("u-4", "i-1", "shutoff", "stopped")  # libvirt's event thread: no task
    heartbeat.send_power_sync("u-5", [])
    assert published == ["u-4", "u-5"]
