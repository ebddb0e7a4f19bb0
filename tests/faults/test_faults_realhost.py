"""The fault-injection suite on the real host (issue 9, item 4): one real QEMU guest per case.

The cloud of ``tests/faults`` (PostgreSQL, a Redis of the test's own, the portal, a conductor with beat)
with one real-host agent on this machine's libvirtd (``qemu:///system``, its own pool under its var dir),
and what the case needs. One launch of the test guest (``tests/guest``) per case; the fault strikes
while its spawn is in flight (its domain just defined on libvirt): the agent, the conductor or the
broker is killed with SIGKILL, then brought back. Then the same checks as the simulated suite (every
instance stable, or ERROR with a fault, within its deadline; no claim leaked; no operation left
unfinished), and the real host's own: the domain libvirt has matches the instance's state (running for
ACTIVE, none for an instance in ERROR off its host), once the restarted agent has reported its domains.
The guest is deleted through the API at the end of each case, and nothing of it may be left in libvirt
(a finalizer removes whatever is, and the agent's pool).

Skipped without a real host, as ``tests/realhost`` is (``ZENITH_REQUIRE_REALHOST=1``: a failure), and
in the embedded pass, as the simulated suite is.
"""

from __future__ import annotations

import contextlib
import io
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest
from django.core.management import call_command

from compute import services
from compute.models import ComputeNode, Image, Instance
from identity.context import system_context
from tests.integration.test_async_plane import wait_for
from tests.realhost.conftest import URI, real_host_guest, remove_instances

from .conftest import SIM_URI, FaultCloud, require_services, running_cloud, wait_hosts_up
from .test_faults import BOUNDED, URL, check, create

pytestmark = [pytest.mark.faults, pytest.mark.realhost, pytest.mark.django_db(transaction=True)]

REAL = "real-faults"  # its pool: $ZENITH_VAR_DIR/agent/real-faults/pool (named after that path)
SIM = "sim-1"
GUEST = "zenith-guest"
SPAWN_DEADLINE = 90.0  # seconds from the create to its domain on libvirt (measured ~1-3 s)
AGENT_DOWN = 6.0  # as in the simulated suite: past ZENITH_HOST_DOWN_AFTER (5 s), its spawn rescheduled
CONDUCTOR_DOWN = 10.0
BROKER_DOWN = 20.0


def domain_state(conn: libvirt.virConnect, instance_id: str) -> str | None:
    """What libvirt says of the instance's domain: "running", "shutoff", ... or None (no domain)."""
    try:
        dom = conn.lookupByName(f"zenith-{instance_id}")
        state = dom.state()[0]
    except libvirt.libvirtError:
        return None
    return {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_SHUTOFF: "shutoff"}.get(
        state, str(state)
    )


def volumes_of(conn: libvirt.virConnect, instance_ids: list[str]) -> list[str]:
    """The volumes of these instances in any active pool of this libvirtd."""
    prefixes = tuple(f"zenith-{i}" for i in instance_ids)
    found = []
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        with contextlib.suppress(libvirt.libvirtError):  # a pool of another run vanishing meanwhile
            pool.refresh(0)
            found += [vol for vol in pool.listVolumes() if vol.startswith(prefixes)]
    return found


def remove_from_libvirt(conn: libvirt.virConnect, instance_ids: list[str], pool_path: Path) -> None:
    """Finalizer: the test's domains and volumes, then the agent's pool (its definition; the
    directory stays), whatever the test left."""
    remove_instances(conn, instance_ids)
    for pool in conn.listAllStoragePools(0):
        with contextlib.suppress(libvirt.libvirtError):
            if ET.fromstring(pool.XMLDesc(0)).findtext("target/path") == str(pool_path):
                if pool.isActive():
                    pool.destroy()
                pool.undefine()


@pytest.fixture
def real_cloud(request, cloud, django_db_blocker, tmp_path, settings):
    """``start(sim_host=False)``: the fault cloud with the real-host agent ``real-faults`` (and the
    simulated host ``sim-1`` if asked: a host that stays up while the real one is down), and a
    connection to its libvirtd. The test guest is registered as the images ``zenith-guest*``."""
    with contextlib.ExitStack() as stack:

        def start(sim_host: bool = False) -> tuple[FaultCloud, libvirt.virConnect]:
            require_services()  # the embedded pass skips before it looks for a real host
            guest = real_host_guest()
            conn = libvirt.open(URI)
            stack.callback(conn.close)
            launched: list[str] = []  # the cloud's accepted ids, once it runs
            pool_path = Path(settings.VAR_DIR) / "agent" / REAL / "pool"
            # Run last, once the processes have stopped: nothing of the test stays in libvirt.
            stack.callback(remove_from_libvirt, conn, launched, pool_path)
            services.seed_flavors()
            call_command("register_guest_image", dir=str(Path(guest.kernel).parent), stdout=io.StringIO())
            images = list(Image.objects.filter(name__startswith=GUEST, project=None))
            admin = cloud.ctx(cloud.admin)
            for image in images:  # their bytes in the portal's store, every test
                stack.callback(services.delete_image, admin, image)
            hosts = {REAL: URI, **({SIM: SIM_URI} if sim_host else {})}
            image_id = str(next(image.pk for image in images if image.name == GUEST))
            fc = stack.enter_context(
                running_cloud(request, cloud, django_db_blocker, tmp_path, settings, image_id, hosts)
            )
            fc.accepted = launched
            return fc, conn

        yield start


def launch_until_defined(fc: FaultCloud, conn: libvirt.virConnect) -> tuple[str, float]:
    """Launch the guest; return once libvirt has its domain (the spawn in flight) with the create's
    latency. The agent defines the domain, starts it, then answers."""
    latency = create(fc, "real-0")
    instance_id = fc.accepted[-1]
    deadline = time.monotonic() + SPAWN_DEADLINE
    polls = 0
    while domain_state(conn, instance_id) is None:  # polled tightly: the fault should find it mid-spawn
        polls += 1
        if polls % 50 == 0:
            row = Instance.objects.filter(pk=instance_id).values("vm_state", "fault").first()
            if row and row["vm_state"] != "building":
                pytest.fail(f"the launch ended {row} before its domain was seen\n{fc.plane.logs()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no domain on libvirt {SPAWN_DEADLINE:.0f} s after the create\n{fc.plane.logs()}")
        time.sleep(0.005)
    return instance_id, latency


def building(instance_id: str) -> bool:
    return Instance.objects.filter(pk=instance_id, vm_state="building").exists()


def reconciled(
    fc: FaultCloud, conn: libvirt.virConnect, instance_id: str, after: float, fault_at: float
) -> dict:
    """Wait until libvirt and the real host's latest domain report (since ``after``, epoch seconds)
    both match the instance: its domain running for ACTIVE, none for an instance in ERROR that is on no
    host (nothing left running for it). Returns what was seen, and the time from the fault to that."""
    seen: dict = {}

    def matches():
        node = ComputeNode.objects.get(host__name=REAL)
        row = Instance.objects.get(pk=instance_id)
        reported = {d.get("instance_id"): d.get("power_state") for d in node.domains}.get(instance_id)
        seen.update(
            vm_state_after=row.vm_state, domain_after=domain_state(conn, instance_id), reported=reported
        )
        if node.domains_reported_at is None or node.domains_reported_at.timestamp() < after:
            return None
        seen["seen_paused"] = seen.get("seen_paused", False) or row.vm_state == "paused"
        if row.vm_state == "error":
            if row.host_id is not None:
                return True  # ERROR on its host: the domain may be there or not (its claim is held)
            expected = None
        elif row.vm_state == "active":
            expected = "running"
        else:
            return False  # nobody paused or stopped it: a launch ends ACTIVE (a PAUSED seen was wrong)
        return seen["domain_after"] == expected and reported == expected

    try:
        wait_for(matches, "the domain on libvirt and in the host's report to match the instance", 40)
    except pytest.fail.Exception:
        pytest.fail(f"the real host did not reconcile: {seen}\n{fc.plane.logs()[-20000:]}")
    reconciled_after = time.monotonic() - fault_at
    drift = services.drift(system_context())
    ours = [
        d for d in drift["unknown_domains"] + drift["missing_domains"] if d.get("instance_id") == instance_id
    ]
    assert ours == [], f"the drift view still lists the guest: {ours}"
    del seen["reported"]
    return {**seen, "fault_to_reconciled_s": round(reconciled_after, 1)}


def delete_and_check_libvirt(fc: FaultCloud, conn: libvirt.virConnect, instance_id: str) -> None:
    """Delete through the API; then neither its domain nor its disk may be left on libvirt."""
    response = fc.session.delete(f"{fc.web_url}{URL}{instance_id}/", timeout=30)
    assert response.status_code in (202, 204), (response.status_code, response.text)
    wait_for(lambda: Instance.objects.get(pk=instance_id).vm_state == "deleted", "the guest's delete", 60)
    wait_for(lambda: domain_state(conn, instance_id) is None, "its domain to be gone from libvirt", 30)
    assert volumes_of(conn, [instance_id]) == [], "its disk is left in the pool"
    assert ComputeNode.objects.get(host__name=REAL).memory_mb_used == 0


def finish(fc: FaultCloud, conn, case: str, fault_at: float, latency: float, after: float, **extra) -> dict:
    """The simulated suite's checks and figures, then the real host's: reconciled, then deleted."""
    figures = check(fc, case, fault_at, [latency], host=f"{REAL} ({URI})", **extra)
    instance_id = fc.accepted[0]
    figures.update(reconciled(fc, conn, instance_id, after, fault_at))
    if figures["failed"]:
        fault = Instance.objects.get(pk=instance_id).fault["message"]
        figures["fault"] = fault[:300]
    delete_and_check_libvirt(fc, conn, instance_id)
    return figures


@pytest.mark.parametrize("other_host", [True, False], ids=["another-host-up", "its-only-host"])
def test_real_host_agent_sigkilled_during_a_spawn(real_cloud, other_host):
    """With another host up, the real host's silence is its own failure: its unanswered spawn is taken
    off it (and fails: no other host boots the guest); when the killed agent's redelivered spawn then
    makes the domain again, that stale answer deletes it. As its cloud's only host, its silence looks
    like a broker outage: the spawn waits for it, and the restarted agent completes it (idempotently,
    on the domain QEMU kept running meanwhile)."""
    fc, conn = real_cloud(sim_host=other_host)
    instance_id, latency = launch_until_defined(fc, conn)
    fault_at = time.monotonic()
    fc.kill(f"agent-{REAL}")
    in_flight = building(instance_id)
    time.sleep(AGENT_DOWN)  # the real host is down now (no heartbeat for 5 s)
    restarted_at = time.time()
    fc.launch_agent(REAL)
    wait_hosts_up(tuple(fc.hosts))
    alone = "" if other_host else ", its cloud's only host"
    figures = finish(
        fc,
        conn,
        f"real host agent SIGKILL during a spawn{alone} (restarted after {AGENT_DOWN:.0f} s)",
        fault_at,
        latency,
        restarted_at + 2,
        spawn_unanswered_at_fault=in_flight,
    )
    if not other_host:
        assert figures["failed"] == 0, f"the spawn must wait for its only host and complete: {figures}"
    elif figures["failed"]:
        # Taken off its host mid-spawn, and no other host boots the guest: ERROR, saying why.
        assert figures["fault"].startswith(f"Spawning failed on {REAL}: the host went down"), figures


def test_conductor_sigkilled_during_a_real_spawn(real_cloud):
    fc, conn = real_cloud()
    instance_id, latency = launch_until_defined(fc, conn)
    fault_at = time.monotonic()
    fc.kill("conductor")  # the agent's answer (and its progress) reach nobody for a while
    in_flight = building(instance_id)
    time.sleep(CONDUCTOR_DOWN)
    fc.launch_conductor()
    figures = finish(
        fc,
        conn,
        f"conductor SIGKILL during a real spawn (restarted after {CONDUCTOR_DOWN:.0f} s)",
        fault_at,
        latency,
        time.time(),
        spawn_unanswered_at_fault=in_flight,
    )
    assert figures["failed"] == 0, f"a spawn in flight at the crash must complete: {figures}"


def test_broker_killed_for_20_s_during_a_real_spawn(real_cloud):
    fc, conn = real_cloud()
    instance_id, latency = launch_until_defined(fc, conn)
    fault_at = time.monotonic()
    fc.redis.kill()  # the spawn's answer is published into nothing; queued messages are lost
    in_flight = building(instance_id)
    reads = []
    while time.monotonic() - fault_at < BROKER_DOWN:
        started = time.monotonic()
        response = fc.session.get(f"{fc.web_url}{URL}{instance_id}/", timeout=30)
        reads.append(time.monotonic() - started)
        assert response.status_code == 200, (response.status_code, response.text)
        time.sleep(1.5)
    assert max(reads) < BOUNDED, f"the API took up to {max(reads):.1f} s to answer while the broker was down"
    fc.redis.start()
    for name in ("conductor", f"agent-{REAL}", "web"):
        assert fc.plane.workers[name].proc.poll() is None, f"{name} died in the broker outage"
    wait_hosts_up((REAL,), timeout=30)
    figures = finish(
        fc,
        conn,
        f"broker killed for {BROKER_DOWN:.0f} s during a real spawn, restarted empty",
        fault_at,
        latency,
        time.time(),
        spawn_unanswered_at_fault=in_flight,
        read_max_during_outage_ms=round(1000 * max(reads), 1),
    )
    assert figures["failed"] == 0, f"a spawn in flight during the outage must complete: {figures}"
