"""Issue 16 item 2: a holder of the broker URL must not speak for hosts.

Before per-host credentials, an unsigned ``host_heartbeat`` registered ``ghost-1`` with 100,000 vCPUs
(ranked first by the scheduler), and a ``power_event`` or ``transition_done`` from anyone changed any
instance or settled any operation. These call the conductor tasks as a forged broker message would
reach them; ``tests/integration/test_host_credentials.py`` runs the real agent with its key.
"""

from __future__ import annotations

import io
import os
import stat
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from compute import scheduler, services
from compute import tasks as compute_tasks
from compute.models import ComputeNode, Flavor, Instance
from tests.compute.conftest import TEST_HOST_INFO, make_flavor, make_host
from tests.compute.instance_helpers import in_state, launch, make_image
from tests.hostsigning import answer, enroll, signed
from workers import hostauth, hostkeys, tasknames
from workers import tasks as worker_tasks
from workers.agent import signing
from workers.models import Host, HostCredential, Operation

from ..workers.conftest import sent  # noqa: F401 F811 - the send_task recorder fixture

pytestmark = pytest.mark.django_db

GHOST = {"roles": ["compute"], "uri": "test:///default", "compute": {**TEST_HOST_INFO, "vcpus": 100_000}}
INFO = {"roles": ["compute"], "uri": "test:///default", "compute": TEST_HOST_INFO}


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    hostkeys.forget()
    yield
    hostkeys.forget()


def heartbeat(host: str, info: dict, *, signer: str | None = None, key: bytes | None = None, **auth):
    kwargs = {"host": host, "info": info}
    if key is not None:
        kwargs = signed(tasknames.HOST_HEARTBEAT, signer or host, key, **kwargs)
    kwargs.update(auth)
    worker_tasks.host_heartbeat.run(**kwargs)


# --- the signature itself (workers.hostauth, pure) --------------------------------------------------


def test_a_signature_covers_the_task_the_host_and_every_argument():
    key = hostauth.decode_key(hostauth.new_key())
    auth = hostauth.sign(key, "h1", "t", ("a",), {"x": 1, "y": [1, 2]})
    assert hostauth.verify([key], auth, "t", ["a"], {"y": (1, 2), "x": 1, "auth": auth}) == "h1"
    for task, args, kwargs in [("t2", ("a",), {"x": 1, "y": [1, 2]}), ("t", ("b",), {"x": 1, "y": [1, 2]})]:
        with pytest.raises(hostauth.HostAuthError, match="bad signature"):
            hostauth.verify([key], auth, task, args, kwargs)
    with pytest.raises(hostauth.HostAuthError, match="bad signature"):
        hostauth.verify([key], auth, "t", ("a",), {"x": 2, "y": [1, 2]})
    with pytest.raises(hostauth.HostAuthError, match="bad signature"):
        hostauth.verify([hostauth.decode_key(hostauth.new_key())], auth, "t", ("a",), {"x": 1, "y": [1, 2]})
    with pytest.raises(hostauth.HostAuthError, match="bad signature"):
        hostauth.verify([key], {**auth, "host": "h2"}, "t", ("a",), {"x": 1, "y": [1, 2]})
    for bad in (None, {}, {**auth, "v": 2}, {**auth, "extra": 1}, {**auth, "ts": "now"}):
        with pytest.raises(hostauth.HostAuthError):
            hostauth.verify([key], bad, "t", ("a",), {"x": 1, "y": [1, 2]})


def test_freshness_and_replay_in_bounded_memory():
    key = hostauth.decode_key(hostauth.new_key())
    guard = hostauth.ReplayGuard(max_entries=100)
    now = time.time()

    def check(auth, at=now):
        return hostauth.verify([key], auth, "t", (), {}, max_age=120, replay=guard, now=at)

    auth = hostauth.sign(key, "h1", "t", now=now)
    assert check(auth) == "h1"
    with pytest.raises(hostauth.HostAuthError, match="replayed"):
        check(auth)
    with pytest.raises(hostauth.HostAuthError, match="old"):
        check(hostauth.sign(key, "h1", "t", now=now - 121))
    with pytest.raises(hostauth.HostAuthError, match="future"):
        check(hostauth.sign(key, "h1", "t", now=now + 61))
    for i in range(1000):
        check(hostauth.sign(key, "h1", "t", now=now, nonce=f"nonce-{i:06d}"))
    assert len(guard) <= 100


def test_key_files_are_private(tmp_path):
    path = hostauth.write_key_file(tmp_path / "a" / "host.key", hostauth.new_key())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    hostauth.read_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(hostauth.HostAuthError, match="readable by others"):
        hostauth.read_key_file(path)


# --- heartbeats ---------------------------------------------------------------------------------


def test_a_forged_heartbeat_of_an_unenrolled_host_registers_nothing(caplog):
    heartbeat("ghost-1", GHOST)  # unsigned, as the probe sent it
    heartbeat("ghost-1", GHOST, key=hostauth.decode_key(hostauth.new_key()))  # signed with a made-up key
    assert not Host.objects.filter(name="ghost-1").exists()
    assert not ComputeNode.objects.exists()
    assert "refused workers.tasks.host_heartbeat (host=ghost-1)" in caplog.text
    assert "ghost-1 is not enrolled" in caplog.text


def test_an_enrolled_host_s_signed_heartbeat_registers_it():
    key = enroll("sim-1")
    heartbeat("sim-1", INFO, key=key)
    assert ComputeNode.objects.get(host__name="sim-1").vcpus == TEST_HOST_INFO["vcpus"]


def test_a_heartbeat_signed_by_one_host_for_another_is_refused(caplog):
    key_a = enroll("host-a")
    enroll("host-b")
    heartbeat("host-b", GHOST, signer="host-a", key=key_a)
    assert not Host.objects.filter(name="host-b").exists()
    assert "about host host-b signed by host host-a" in caplog.text
    # Nor can host A pass its own signature off as B's by claiming to be B in ``auth``.
    forged = signed(tasknames.HOST_HEARTBEAT, "host-b", key_a, host="host-b", info=GHOST)
    worker_tasks.host_heartbeat.run(**forged)
    assert not Host.objects.filter(name="host-b").exists()


def test_the_ghost_host_is_never_ranked(cloud):
    """The probe's attack end to end: the 100,000-vCPU ghost must not be a candidate."""
    key = enroll("sim-1")
    heartbeat("sim-1", INFO, key=key)
    heartbeat("ghost-1", GHOST)
    wanted = scheduler.Request(vcpus=8, memory_mb=1024, disk_gb=0)
    assert [host.name for host in scheduler.candidates(wanted)] == ["sim-1"]


def test_a_replayed_or_stale_heartbeat_is_refused(caplog):
    key = enroll("sim-1")
    kwargs = signed(tasknames.HOST_HEARTBEAT, "sim-1", key, host="sim-1", info=INFO)
    worker_tasks.host_heartbeat.run(**kwargs)
    Host.objects.filter(name="sim-1").update(last_heartbeat=None)
    worker_tasks.host_heartbeat.run(**kwargs)  # the same message again
    assert Host.objects.get(name="sim-1").last_heartbeat is None
    assert "replayed message from sim-1" in caplog.text
    old = {"host": "sim-1", "info": INFO}
    old["auth"] = hostauth.sign(key, "sim-1", tasknames.HOST_HEARTBEAT, (), old, now=time.time() - 3600)
    worker_tasks.host_heartbeat.run(**old)
    assert Host.objects.get(name="sim-1").last_heartbeat is None


def test_a_host_claims_only_the_roles_it_was_enrolled_for():
    key = enroll("sim-1", roles=["compute"])
    heartbeat("sim-1", {**INFO, "roles": ["compute", "network"]}, key=key)
    assert not Host.objects.filter(name="sim-1").exists()
    heartbeat("sim-1", INFO, key=key)
    assert Host.objects.get(name="sim-1").roles == ["compute"]


def test_rotation_keeps_the_previous_key_for_its_grace_then_revocation_refuses_all(settings):
    old = enroll("sim-1")
    new = enroll("sim-1", rotate=True)
    assert new != old
    heartbeat("sim-1", INFO, key=old)  # still on its way when the key was rotated
    assert Host.objects.filter(name="sim-1").exists()
    HostCredential.objects.filter(host_name="sim-1").update(rotated_at=timezone.now() - timedelta(hours=1))
    hostkeys.forget()
    Host.objects.filter(name="sim-1").update(last_heartbeat=None)
    heartbeat("sim-1", INFO, key=old)
    assert Host.objects.get(name="sim-1").last_heartbeat is None
    heartbeat("sim-1", INFO, key=new)
    assert Host.objects.get(name="sim-1").last_heartbeat is not None
    call_command("enroll_host", "sim-1", "--revoke", stdout=io.StringIO())
    Host.objects.filter(name="sim-1").update(last_heartbeat=None)
    heartbeat("sim-1", INFO, key=new)
    assert Host.objects.get(name="sim-1").last_heartbeat is None


# --- power events and syncs ------------------------------------------------------------------------


@pytest.fixture
def running_on_a(cloud):
    make_image()
    instance = in_state(launch(cloud, flavor=make_flavor("tiny")), "active", host=make_host("host-a"))
    make_host("host-b")
    return instance


def power_event(signer, key, instance, state="shutdown", host=None):
    kwargs = {
        "host": host or signer,
        "instance_id": str(instance.pk),
        "power_state": state,
        "event": "stopped",
    }
    compute_tasks.power_event.run(**signed(tasknames.POWER_EVENT, signer, key, **kwargs))


def test_a_forged_power_event_changes_nothing(running_on_a):
    enroll("host-a")
    key_b = enroll("host-b")
    compute_tasks.power_event.run(
        host="host-a", instance_id=str(running_on_a.pk), power_state="shutdown", event="stopped"
    )  # unsigned
    power_event("host-b", key_b, running_on_a)  # host B about an instance on host A
    power_event("host-b", key_b, running_on_a, host="host-a")  # host B claiming to be host A
    running_on_a.refresh_from_db()
    assert (running_on_a.vm_state, running_on_a.power_state) == ("active", "running")


def test_the_instance_s_own_host_s_power_event_applies(running_on_a):
    power_event("host-a", enroll("host-a"), running_on_a)
    running_on_a.refresh_from_db()
    assert (running_on_a.vm_state, running_on_a.power_state) == (Instance.STOPPED, "shutdown")


def test_a_forged_power_sync_changes_nothing(running_on_a):
    key_b = enroll("host-b")
    domains = [{"instance_id": str(running_on_a.pk), "power_state": "shutdown"}]
    kwargs = {"host": "host-a", "domains": domains, "apply": True}
    compute_tasks.power_sync.run(**kwargs)
    compute_tasks.power_sync.run(**signed(tasknames.POWER_SYNC, "host-b", key_b, **kwargs))
    running_on_a.refresh_from_db()
    assert running_on_a.power_state == "running"
    assert ComputeNode.objects.get(host__name="host-a").domains_reported_at is None


# --- answers of host tasks -------------------------------------------------------------------------


@pytest.fixture
def stopping_on_a(cloud, running_on_a, sent):  # noqa: F811
    """``stop`` of an instance on host A, sent to host A's queue by the conductor step."""
    instance = services.instance_action(cloud.ctx(cloud.member), running_on_a, "stop")
    op = str(instance.operation_id)
    worker_tasks.run_transition.run(
        operation_id=op, resource_type="instance", resource_id=str(instance.pk), transition="stop"
    )
    (message,) = [m for m in sent if m.queue == "compute.host-a"]
    assert Operation.objects.get(pk=op).host == "host-a"
    return instance, message.options["link"].kwargs


def settled(instance):
    instance.refresh_from_db()
    return instance.vm_state, instance.task_state, Operation.objects.get(pk=instance.operation_id).state


def test_a_forged_answer_settles_nothing(stopping_on_a):
    instance, step = stopping_on_a
    key_b = enroll("host-b")
    done = {"ok": True, "host": "host-a", "power_state": "shutdown"}
    worker_tasks.transition_done.run(done, **step)  # unsigned
    worker_tasks.transition_done.run(done, **answer("host-b", key_b, done, **step))  # another host
    worker_tasks.host_task_failed.run(
        "x", **signed(tasknames.HOST_TASK_FAILED, "host-b", key_b, "x", **step)
    )  # a crash reported by another host
    worker_tasks.operation_progress.run(
        **signed(
            tasknames.OPERATION_PROGRESS,
            "host-b",
            key_b,
            operation_id=step["operation_id"],
            percent=90,
            message="x",
        )
    )
    assert settled(instance) == ("active", "powering-off", "running")
    assert Operation.objects.get(pk=instance.operation_id).progress == 10


def test_the_target_host_s_answer_settles_only_its_own_operation(cloud, stopping_on_a):
    instance, step = stopping_on_a
    key_a = enroll("host-a")
    done = {"ok": True, "host": "host-a", "power_state": "shutdown"}
    legit = answer("host-a", key_a, done, **step)
    # The same signed answer moved to another operation of host A, or to another resource: refused.
    other = in_state(launch(cloud, name="vm2", flavor=Flavor.objects.first()), "active", host=instance.host)
    other = services.instance_action(cloud.ctx(cloud.member), other, "stop")
    worker_tasks.run_transition.run(
        operation_id=str(other.operation_id),
        resource_type="instance",
        resource_id=str(other.pk),
        transition="stop",
    )
    moved = {**legit, "operation_id": str(other.operation_id), "resource_id": str(other.pk)}
    worker_tasks.transition_done.run(done, **moved)
    assert settled(other) == ("active", "powering-off", "running")
    retargeted = answer("host-a", key_a, done, **{**step, "resource_id": str(other.pk)})
    worker_tasks.transition_done.run(done, **retargeted)
    assert settled(other) == ("active", "powering-off", "running")
    assert settled(instance) == ("active", "powering-off", "running")
    # The real answer, through the conductor task, settles it.
    worker_tasks.transition_done.run(done, **legit)
    assert settled(instance) == (Instance.STOPPED, "", "succeeded")


def test_a_late_answer_from_a_host_the_operation_left_is_refused(stopping_on_a):
    instance, step = stopping_on_a
    key_a = enroll("host-a")
    Operation.objects.filter(pk=instance.operation_id).update(host="host-b")  # sent elsewhere since
    done = {"ok": True, "power_state": "shutdown"}
    worker_tasks.transition_done.run(done, **answer("host-a", key_a, done, **step))
    assert settled(instance) == ("active", "powering-off", "running")


# --- the agent's side and the command ------------------------------------------------------------------


def test_the_agent_signs_a_celery_message_body_with_its_key_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ZENITH_VAR_DIR", str(tmp_path))
    monkeypatch.delenv(hostauth.KEY_FILE_ENV, raising=False)
    done = {"ok": True}
    body = ((done,), {"operation_id": "op"}, {"callbacks": None})
    assert signing.sign_body(tasknames.TRANSITION_DONE, body, host="host-a") is False  # no key yet
    assert "auth" not in body[1]
    key = hostauth.new_key()
    hostauth.write_key_file(hostauth.default_key_path(tmp_path, "host-a"), key)
    assert signing.sign_body(tasknames.TRANSITION_DONE, body, host="host-a") is True
    verified = hostauth.verify(
        [hostauth.decode_key(key)], body[1]["auth"], tasknames.TRANSITION_DONE, [done], body[1]
    )
    assert verified == "host-a"
    # ``{host}`` in ZENITH_HOST_KEY_FILE: one process, several hosts, each with its own key.
    monkeypatch.setenv(hostauth.KEY_FILE_ENV, str(tmp_path / "keys" / "{host}.key"))
    hostauth.write_key_file(tmp_path / "keys" / "host-b.key", hostauth.new_key())
    with signing.signing_as("host-b"):
        assert signing.sign_body(tasknames.HOST_HEARTBEAT, ((), {"host": "host-b"}, {}))


def test_enroll_host_writes_a_private_key_file_and_is_idempotent(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    out = io.StringIO()
    call_command("enroll_host", "sim-1", "sim-2", stdout=out)
    path = hostauth.default_key_path(tmp_path, "sim-1")
    assert f"sim-1: enrolled; key in {path}" in out.getvalue()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text().strip()
    assert HostCredential.objects.get(host_name="sim-1").key == key
    call_command("enroll_host", "sim-1", stdout=io.StringIO())
    assert path.read_text().strip() == key  # `make run` again: same key
    path.unlink()
    call_command("enroll_host", "sim-1", stdout=io.StringIO())
    assert path.read_text().strip() == key  # the file comes back from the database
    call_command("enroll_host", "sim-1", "--rotate", stdout=io.StringIO())
    assert path.read_text().strip() != key
    printed = io.StringIO()
    call_command(
        "enroll_host",
        "remote-7",
        "--print",
        "--roles",
        "compute,storage",
        stdout=printed,
        stderr=io.StringIO(),
    )
    assert HostCredential.objects.get(host_name="remote-7").key == printed.getvalue().strip()
    assert not hostauth.default_key_path(tmp_path, "remote-7").exists()
    listing = io.StringIO()
    call_command("enroll_host", "--list", stdout=listing)
    assert "remote-7: compute,storage" in listing.getvalue() and "sim-2: any role" in listing.getvalue()
    with pytest.raises(CommandError, match="Host names"):
        call_command("enroll_host", "bad/name", stdout=io.StringIO())
    with pytest.raises(CommandError, match="Unknown host roles"):
        call_command("enroll_host", "sim-3", "--roles", "gpu", stdout=io.StringIO())


def test_enroll_host_simulate_enrolls_a_multi_host_agents_hosts_in_a_fixed_number_of_statements(
    tmp_path, settings, django_assert_max_num_queries
):
    from workers import services

    settings.VAR_DIR = tmp_path
    call_command("enroll_host", "sim-2", stdout=io.StringIO())  # one enrolled already keeps its key
    kept = HostCredential.objects.get(host_name="sim-2").key
    out = io.StringIO()
    with django_assert_max_num_queries(8):  # not one per host
        call_command("enroll_host", "--simulate", "300", "--host-prefix", "sim-", stdout=out)
    assert "300 hosts sim-1 ... sim-300: 299 enrolled, 1 already enrolled" in out.getvalue()
    creds = dict(HostCredential.objects.values_list("host_name", "key"))
    assert len(creds) == 300 and creds["sim-2"] == kept and len(set(creds.values())) == 300
    for name in ("sim-1", "sim-2", "sim-300"):
        path = hostauth.default_key_path(tmp_path, name)
        assert path.read_text().strip() == creds[name] and stat.S_IMODE(path.stat().st_mode) == 0o600
    # Again (a harness restarting its agent): nothing new, the same keys.
    done = services.enroll_hosts([f"sim-{n}" for n in range(1, 301)], roles=["compute"])
    assert not any(one.created for one in done) and {one.host: one.key for one in done} == creds
    assert all(r == ["compute"] for r in HostCredential.objects.values_list("roles", flat=True))
    with pytest.raises(CommandError, match="number of hosts"):
        call_command("enroll_host", "--simulate", "-1", stdout=io.StringIO())


def test_make_run_enrolls_every_host_its_procfile_starts():
    """``make run`` needs no manual step: each agent line of the Procfile gets its host enrolled."""
    import re
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    agents = re.findall(r"manage\.py agent --host (\S+)", (root / "Procfile").read_text())
    assert agents == ["sim-1", "sim-2", "real-1"]
    for real, expected in (("", agents[:2]), ("1", agents)):
        plan = subprocess.run(
            ["make", "-n", "run", f"REAL_HOST={real}"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
        (line,) = [line for line in plan.splitlines() if "manage.py enroll_host" in line]
        assert line.split("enroll_host", 1)[1].split() == expected
        assert plan.index("enroll_host") < plan.index("honcho start")
