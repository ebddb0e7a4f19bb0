"""Host-side tasks, consumed from ``compute.<host>``, ``storage.<host>``, ``network.<host>``.

They take plain data and answer ``{"ok": bool, ...}``: a hypervisor error is an answer the conductor
records (``ok: false`` with libvirt's message), not an exception. Every task is idempotent: a
redelivered spawn finds its disk and domain, a repeated delete finds nothing to delete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

from celery import shared_task

from .. import tasknames
from ..messages import AttachmentResult, MessageError, NicSpec, VolumeAttachment, VolumeConnection
from . import heartbeat, images, network, runtime
from .drivers.base import DiskSpec, DomainNotFound, DomainSpec, DriverError
from .drivers.libvirt import networks as nx
from .drivers.libvirt.disks import flatten_disk
from .progress import Progress, put_stream
from .progress import fetch as _fetch
from .runtime import host_name

log = logging.getLogger(__name__)

CONDUCTOR = "conductor"
MiB = 1024 * 1024
STOP_TIMEOUT_ENV = "ZENITH_STOP_TIMEOUT"


@shared_task(name=tasknames.AGENT_PING, acks_late=True)
def ping(nonce: str = "") -> dict:
    """Answer with who ran it: proves a message for this host reached this host's agent."""
    return {
        "ok": True,
        "host": host_name(),
        "pid": os.getpid(),
        "nonce": nonce,
        "time": time.time(),
        "message": f"pong from {host_name()}",
    }


@shared_task(name=tasknames.AGENT_REPORT_HOST, acks_late=True)
def report_host() -> dict:
    """ "All hosts report now": send a heartbeat with fresh capacity, and answer with it. A multi-host
    agent that got it on no host's queue (the broadcast) reports every host it serves, batched."""
    if runtime.multi_host() and runtime.current_host() is None:
        hosts = runtime.served_hosts()
        count = heartbeat.report_many(hosts)
        return {"ok": True, "hosts": [h.name for h in hosts], "message": f"{count} hosts reported"}
    info = heartbeat.report(host_name())
    return {"ok": True, "host": host_name(), "info": asdict(info), "message": f"{host_name()} reported"}


@shared_task(name=tasknames.AGENT_SPAWN_INSTANCE, acks_late=True)
def spawn_instance(operation_id: str, instance: dict, image: dict, root_volume: dict | None = None) -> dict:
    """Fetch the image (cached), create the copy-on-write root disk, define and start the domain.

    With ``root_volume`` (a ``VolumeConnection``: boot from volume) the root disk is that volume as
    its storage host hands it over (file, block or network), nothing is cloned into this host's pool.
    ``instance["nics"]`` (optional): ``workers.messages.NicSpec`` dicts, one NIC each on its libvirt
    network with its port's nwfilter; none, no NIC (as before)."""
    with runtime.acting_on(str(instance.get("id") or "")):
        return _spawn(operation_id, instance, image, root_volume)


def _spawn(operation_id: str, instance: dict, image: dict, root_volume: dict | None) -> dict:
    host = host_name()
    progress = Progress(operation_id)
    domain = instance["domain"]
    disk_name = f"{domain}-disk"
    drv = runtime.driver()
    try:
        root = VolumeConnection.from_dict(root_volume) if root_volume else None
        mib = max(1, image["size"] // MiB)

        def on_bytes(done: int, total: int) -> None:
            progress(
                10 + int(70 * done / max(total, 1)),
                f"fetching image {image['name']}: {done // MiB}/{mib} MiB",
            )

        boot: dict = {}
        if image.get("kernel"):
            boot["kernel"] = _fetch(image["kernel"])
            if image.get("ramdisk"):
                boot["ramdisk"] = _fetch(image["ramdisk"])
            boot["cmdline"] = image.get("cmdline") or "console=ttyS0"
        if root is not None:
            disk = DiskSpec(
                path=root.path,
                format=root.format,
                target_dev="vda",
                type=root.type,
                protocol=root.protocol,
                hosts=tuple(root.hosts),
                secret_uuid=root.secret_uuid,
            )
        else:
            progress(12, f"fetching image {image['name']}")
            base = _fetch(image, on_bytes)
            progress(82, "creating the root disk")
            disk = DiskSpec(
                path=drv.create_disk_from_image(
                    disk_name,
                    base,
                    instance["disk_gb"],
                    backing_format="qcow2" if image["disk_format"] == "qcow2" else "raw",
                )
            )
        nics = _spawn_nics(instance.get("nics") or (), drv)
        console = runtime.console_log_path(instance["id"])
        Path(console).parent.mkdir(parents=True, exist_ok=True)
        progress(90, "starting the domain")
        info = drv.spawn(
            DomainSpec(
                name=domain,
                uuid=instance["id"],
                vcpus=instance["vcpus"],
                memory_mb=instance["memory_mb"],
                disks=[disk],
                nics=nics,
                console_log=console,
                **boot,
            )
        )
    except (DriverError, images.ImageFetchError, OSError, KeyError, MessageError) as exc:
        log.warning("spawn of %s on %s failed: %s", domain, host, exc)
        with contextlib.suppress(Exception):  # leave nothing half-made for the next host to trip on
            drv.destroy_and_undefine(domain)
            if not root_volume:  # a root volume is the storage host's, kept for the next host
                drv.delete_volume(disk_name)
        return {"ok": False, "host": host, "error": f"{type(exc).__name__}: {exc}"}
    return {
        "ok": True,
        "host": host,
        "power_state": info["state"],
        "domain_type": info["domain_type"],
        "message": f"{domain} running on {host}",
    }


def _spawn_nics(specs, drv) -> list:
    """The driver NICs of a spawn's ``instance["nics"]`` (``workers.messages.NicSpec`` dicts, one per
    port), each port's nwfilter defined first (recorded on a simulated host): a domain whose NIC
    references a filter that is not there does not start."""
    nics = []
    for raw in specs:
        nic = NicSpec.from_dict(raw)
        if nic.filter is not None:
            answer = network.apply_port_filter(nic.filter.as_dict())
            if not answer["ok"]:
                raise DriverError(f"nwfilter {nic.filter.name}: {answer['error']}")
        nics.append(nx.driver_nic(nic))
    return nics


@shared_task(name=tasknames.AGENT_REBUILD_INSTANCE, acks_late=True)
def rebuild_instance(operation_id: str, instance: dict, image: dict) -> dict:
    """Nova's rebuild: the same domain (name, uuid) on a root disk made anew from ``image`` (a spawn's
    signed image spec), started. The image (and its kernel and ramdisk) is fetched first: a failure
    there leaves the old guest as it was. Then the domain and its root disk go and ``_spawn`` makes
    them again; a failure from there on leaves nothing (``power_state`` nostate: the instance's
    lifecycle sets ERROR)."""
    with runtime.acting_on(str(instance.get("id") or "")):
        host = host_name()
        drv = runtime.driver()
        domain = instance["domain"]
        try:
            for spec in (image, image.get("kernel"), image.get("ramdisk")):
                if spec and spec.get("size"):
                    _fetch(spec)
            drv.destroy_and_undefine(domain)
            drv.delete_volume(f"{domain}-disk")
        except (DriverError, images.ImageFetchError, OSError, KeyError) as exc:
            log.warning("rebuild of %s on %s failed before the old disk went: %s", domain, host, exc)
            return _domain_failure(drv, host, domain, exc, f"{type(exc).__name__}: {exc}")
        return _spawn(operation_id, instance, image, None)


def _stop_timeout() -> float:
    try:
        return float(os.environ.get(STOP_TIMEOUT_ENV, "60"))
    except ValueError:
        return 60.0


def _hard_reboot(drv, domain: str) -> None:
    """Nova's hard reboot: whatever the state, the guest ends up freshly booted."""
    state = drv.power_state(domain)
    if state == "running":
        drv.reboot(domain, hard=True)
        return
    if state == "paused":
        drv.unpause(domain)
        drv.reboot(domain, hard=True)
        return
    drv.start(domain)


def _domain_failure(drv, host: str, domain: str, exc: Exception, error: str) -> dict:
    """A failed action's answer, with the power state the domain is in after it (``nostate`` when
    there is no such domain here)."""
    if isinstance(exc, DomainNotFound):
        return {
            "ok": False,
            "host": host,
            "power_state": "nostate",
            "error": f"no domain {domain} on host {host}",
        }
    power = ""
    with contextlib.suppress(DriverError):
        power = drv.power_state(domain)
    return {"ok": False, "host": host, "power_state": power, "error": error}


@shared_task(name=tasknames.AGENT_INSTANCE_ACTION, acks_late=True)
def instance_action(action: str, domain: str, instance_id: str = "") -> dict:
    """One lifecycle action on a domain; answers with the power state libvirt reports after it."""
    with runtime.acting_on(instance_id):
        return _instance_action(action, domain, instance_id)


def _instance_action(action: str, domain: str, instance_id: str) -> dict:
    host = host_name()
    drv = runtime.driver()
    try:
        if action == "delete":
            done = drv.destroy_and_undefine(domain)
            drv.delete_volume(f"{domain}-disk")
            if instance_id:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(runtime.console_log_path(instance_id))
            return {"ok": True, "host": host, "message": f"{domain} deleted from {host}", **done}
        if action == "reboot":
            reboot = getattr(drv, "reboot_with_fallback", None)
            if reboot is not None:
                reboot(domain)
            else:
                drv.reboot(domain)
        elif action == "reboot_hard":
            _hard_reboot(drv, domain)
        elif action == "stop":
            drv.stop(domain, timeout=_stop_timeout())
        elif action in ("start", "pause", "unpause", "suspend", "resume"):
            getattr(drv, action)(domain)
        else:
            return {"ok": False, "host": host, "error": f"unknown action {action!r}"}
        return {"ok": True, "host": host, "power_state": drv.power_state(domain), "message": f"{action} done"}
    except DriverError as exc:
        return _domain_failure(drv, host, domain, exc, str(exc))


@shared_task(name=tasknames.AGENT_CONSOLE_LOG, acks_late=True)
def console_log(domain: str, instance_id: str, lines: int = 100) -> dict:
    """The tail of the guest's serial console log. libvirt's test driver runs no guest, so there is
    none to read there: that is said, not faked."""
    host = host_name()
    drv = runtime.driver()
    try:
        simulated = drv.resolved_domain_type() == "test"
    except DriverError as exc:
        return {"ok": False, "host": host, "error": str(exc)}
    if simulated:
        return {
            "ok": True,
            "host": host,
            "output": "",
            "supported": False,
            "message": f"{host} is a simulated host (libvirt's test driver): it runs no guest, so there is "
            "no console output.",
        }
    return {
        "ok": True,
        "host": host,
        "output": drv.console_log(runtime.console_log_path(instance_id), lines),
        "supported": True,
    }


# -- snapshots: the instance's root disk, flattened, to a signed image upload URL ------------------


SIMULATED_SNAPSHOT = (
    "simulated host (libvirt's test driver): its disks hold no bytes, so the snapshot is the "
    "instance's base image, which this host has in its image cache, flattened to qcow2"
)


def _file_chunks(path: Path, progress, total: int):
    mib = max(1, total // MiB)
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(MiB):
            done += len(chunk)
            progress(40 + int(55 * done / max(total, 1)), f"uploading the snapshot: {done // MiB}/{mib} MiB")
            yield chunk


@shared_task(name=tasknames.AGENT_SNAPSHOT_INSTANCE, acks_late=True)
def snapshot_instance(
    operation_id: str, domain: str, instance_id: str, upload_url: str, base_image: dict | None = None
) -> dict:
    """A flattened qcow2 copy of the domain's root disk (vda), PUT to ``upload_url`` (the portal's
    signed URL of the queued image) with its Content-Length. A running guest is paused during the
    copy and resumed after (``ComputeDriver.export_disk``); the answer has the bytes sent, their
    sha256 and the power state after, which is the one before.

    On libvirt's test driver there are no disk bytes: the simulated disk's content is taken to be
    its base image ``base_image`` (the signed image spec a spawn gets, already in this host's cache)
    and that is flattened and sent, the answer saying so (``simulated``). An instance without one
    (booted from a volume) cannot be snapshotted there."""
    with runtime.acting_on(instance_id):
        return _snapshot(operation_id, domain, instance_id, upload_url, base_image)


def _snapshot(operation_id, domain, instance_id, upload_url, base_image) -> dict:
    host = host_name()
    drv = runtime.driver()
    progress = Progress(operation_id)
    work = runtime.host_dir() / "snapshots"
    dest = work / f"{instance_id}-{operation_id}.qcow2"
    simulated = False
    try:
        work.mkdir(parents=True, exist_ok=True)
        dest.unlink(missing_ok=True)  # a redelivered task starts its copy again
        simulated = drv.resolved_domain_type() == "test"
        progress(15, "copying the root disk")
        if simulated:
            drv.power_state(domain)  # the domain must exist here, as for a real copy
            if not base_image:
                return {
                    "ok": False,
                    "host": host,
                    "error": f"{host} is a simulated host and the instance "
                    "has no base image: there are no disk bytes to snapshot",
                }
            source = _fetch(base_image)
            flatten_disk(source, "qcow2" if base_image.get("disk_format") == "qcow2" else "raw", str(dest))
            source = message = SIMULATED_SNAPSHOT
        else:
            # The marker outlives an agent killed mid-copy: the redelivered task resumes the guest.
            done = drv.export_disk(domain, str(dest), marker=str(work / f"{domain}.paused"))
            source = done["source"]
            message = f"{source} copied" + (" (the guest was paused meanwhile)" if done["paused"] else "")
        size = dest.stat().st_size
        sent, checksum = put_stream(upload_url, _file_chunks(dest, progress, size), length=size)
        return {
            "ok": True,
            "host": host,
            "power_state": drv.power_state(domain),
            "size_bytes": sent,
            "checksum": checksum,
            "simulated": simulated,
            "source": source,
            "message": f"{message}; {sent} bytes uploaded",
        }
    except (DriverError, images.ImageFetchError, OSError, KeyError) as exc:
        log.warning("snapshot of %s on %s failed: %s", domain, host, exc)
        return _domain_failure(drv, host, domain, exc, f"{type(exc).__name__}: {exc}")
    finally:
        dest.unlink(missing_ok=True)


# -- volumes on this compute host's domains: a ``workers.messages.VolumeAttachment`` in, an
# ``AttachmentResult`` out; sent as ``kwargs={"attachment": VolumeAttachment(...).as_dict()}``.


def disk_spec(attachment: VolumeAttachment) -> DiskSpec:
    """The disk of a volume, whatever its backend: the storage host's connection info as it is."""
    c = attachment.connection
    return DiskSpec(
        path=c.path,
        format=c.format,
        target_dev=attachment.target_dev or None,
        readonly=attachment.readonly,
        type=c.type,
        protocol=c.protocol,
        hosts=tuple(c.hosts),
        secret_uuid=c.secret_uuid,
    )


def _attachment_task(attachment: dict, work) -> dict:
    host = host_name()
    try:
        att = VolumeAttachment.from_dict(attachment)
        return work(att, runtime.driver())
    except MessageError as exc:
        return AttachmentResult(ok=False, error=str(exc)).as_dict()
    except DomainNotFound:
        domain = attachment.get("domain") if isinstance(attachment, dict) else None
        return AttachmentResult(ok=False, error=f"no domain {domain} on host {host}").as_dict()
    except (DriverError, ValueError) as exc:
        return AttachmentResult(ok=False, error=f"{type(exc).__name__}: {exc}").as_dict()


def _simulated_note(drv) -> str:
    return (
        " (simulated host: its definition only, no guest saw it)"
        if drv.resolved_domain_type() == "test"
        else ""
    )


@shared_task(name=tasknames.AGENT_ATTACH_VOLUME, acks_late=True)
def attach_volume(attachment: dict) -> dict:
    """Plug the volume into the domain: live and persistent on a running guest, persistent only on a
    shut-off domain or a simulated host (``live: False``). ``target_dev`` "" picks the next free vdX;
    the answer names the target. Idempotent: a volume already attached answers where it is."""

    def work(att: VolumeAttachment, drv) -> dict:
        done = drv.attach_disk(att.domain, disk_spec(att))
        verb = "attached" if done["attached"] else "already attached"
        return AttachmentResult(
            ok=True,
            target_dev=done["target"],
            live=done["live"],
            message=f"{verb} at {done['target']}{_simulated_note(drv)}",
        ).as_dict()

    return _attachment_task(attachment, work)


@shared_task(name=tasknames.AGENT_DETACH_VOLUME, acks_late=True)
def detach_volume(attachment: dict) -> dict:
    """Unplug the volume (found by its connection's path) from the domain; ok when it was not there.
    A running guest must release it: one that does not within the timeout is an error (retry-safe)."""

    def work(att: VolumeAttachment, drv) -> dict:
        done = drv.detach_disk(att.domain, att.connection.path)
        if not done["detached"]:
            return AttachmentResult(ok=True, message="not attached").as_dict()
        return AttachmentResult(
            ok=True,
            target_dev=done["target"],
            live=done["live"],
            message=f"detached from {done['target']}{_simulated_note(drv)}",
        ).as_dict()

    return _attachment_task(attachment, work)


@shared_task(name=tasknames.AGENT_RESIZE_VOLUME, acks_late=True)
def resize_volume(attachment: dict) -> dict:
    """The attached volume grew to ``size_bytes`` (its storage host extended it): libvirt's block
    resize tells the running guest. ``live: False`` when there is no running guest to tell (shut
    off, or a simulated host): the next boot reads the volume's size."""

    def work(att: VolumeAttachment, drv) -> dict:
        if att.size_bytes <= 0:
            return AttachmentResult(ok=False, error="a resize names the new size_bytes").as_dict()
        done = drv.resize_disk(att.domain, att.connection.path, att.size_bytes)
        note = "the guest sees it now" if done["live"] else "no running guest to tell" + _simulated_note(drv)
        return AttachmentResult(
            ok=True,
            target_dev=done["target"],
            live=done["live"],
            message=f"{done['target']} is {att.size_bytes} bytes: {note}",
        ).as_dict()

    return _attachment_task(attachment, work)
