"""The host agent's instance tasks, run in this process against libvirt's test driver: spawn (image
fetched over HTTP, copy-on-write disk, domain), every action, delete, console log, failures."""

from __future__ import annotations

import hashlib
import http.server
import threading
import time
import uuid

import pytest

from workers.agent import runtime, tasks

IMAGE = b"QFI\xfb" + bytes(range(256)) * 4096


@pytest.fixture
def agent(monkeypatch, tmp_path):
    """This process as agent ``unit-host`` on a fresh test:///default (state lives per connection)."""
    monkeypatch.setenv(runtime.HOST_ENV, "unit-host")
    monkeypatch.setenv(runtime.URI_ENV, "test:///default")
    monkeypatch.setenv(runtime.VAR_ENV, str(tmp_path))
    monkeypatch.setattr(runtime, "_driver", None)
    yield runtime.driver()
    runtime.driver().close()
    monkeypatch.setattr(runtime, "_driver", None)


@pytest.fixture
def image_server():
    """A plain HTTP server with the image at /image (what the portal's signed URL serves)."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
            # Half, a pause (a slow network), the rest: long enough for progress to be reported.
            half = len(IMAGE) // 2
            self.wfile.write(IMAGE[:half])
            self.wfile.flush()
            time.sleep(0.5)
            self.wfile.write(IMAGE[half:])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/image", hits
    server.shutdown()


def spec(url, checksum=None) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "name": "tiny",
        "url": url,
        "checksum": checksum or hashlib.sha256(IMAGE).hexdigest(),
        "size": len(IMAGE),
        "disk_format": "qcow2",
        "kernel": None,
        "ramdisk": None,
        "cmdline": "",
    }


def instance() -> dict:
    iid = str(uuid.uuid4())
    return {"id": iid, "name": "vm", "domain": f"zenith-{iid}", "vcpus": 1, "memory_mb": 512, "disk_gb": 1}


def domains(drv) -> dict:
    return {d["name"]: d for d in drv.list_domains()}


def test_spawn_fetches_once_creates_disk_and_domain_and_reports_progress(agent, image_server, sent):
    url, hits = image_server
    vm = instance()
    result = tasks.spawn_instance("op-1", vm, spec(url))
    assert result["ok"], result
    assert (result["host"], result["power_state"], result["domain_type"]) == ("unit-host", "running", "test")
    dom = domains(agent)[vm["domain"]]
    assert dom["instance_id"] == vm["id"] and dom["power_state"] == "running"
    assert any(v == f"{vm['domain']}-disk" for v in agent.ensure_pool().listVolumes())
    progress = [t.kwargs for t in sent if t.name == "workers.tasks.operation_progress"]
    assert progress, "a spawn that took over 0.2 s reported its progress"
    percents = [p["percent"] for p in progress]
    assert percents == sorted(percents) and all(t.queue == "conductor" for t in sent)
    assert any("fetching image tiny" in p["message"] for p in progress)
    # Idempotent: a redelivered spawn finds the domain; a second instance reuses the cached image.
    assert tasks.spawn_instance("op-1", vm, spec(url))["ok"]
    assert tasks.spawn_instance("op-2", instance(), spec(url))["ok"]
    assert hits == ["/image"]


def test_every_action_and_delete(agent, image_server, sent):
    vm = instance()
    assert tasks.spawn_instance("op", vm, spec(image_server[0]))["ok"]
    steps = [
        ("pause", "paused"),
        ("unpause", "running"),
        ("suspend", "suspended"),
        ("resume", "running"),
        ("reboot", "running"),
        ("reboot_hard", "running"),
        ("stop", "shutdown"),
        ("reboot_hard", "running"),  # a hard reboot boots a stopped guest
        ("stop", "shutdown"),
        ("start", "running"),
    ]
    for action, power in steps:
        result = tasks.instance_action(action, vm["domain"], vm["id"])
        assert result["ok"] and result["power_state"] == power, (action, result)
    gone = tasks.instance_action("delete", vm["domain"], vm["id"])
    assert gone["ok"] and gone["deleted"]
    assert vm["domain"] not in domains(agent)
    assert f"{vm['domain']}-disk" not in agent.ensure_pool().listVolumes()
    again = tasks.instance_action("delete", vm["domain"], vm["id"])
    assert again["ok"] and not again["deleted"]  # deleting what is gone succeeds


def test_actions_on_a_missing_domain_and_unknown_actions_answer_not_ok(agent):
    result = tasks.instance_action("stop", "zenith-missing", "x")
    assert not result["ok"] and "no domain zenith-missing on host unit-host" in result["error"]
    assert not tasks.instance_action("explode", "zenith-missing")["ok"]


def test_a_bad_checksum_fails_the_spawn_and_leaves_nothing(agent, image_server, sent):
    vm = instance()
    result = tasks.spawn_instance("op", vm, spec(image_server[0], checksum="0" * 64))
    assert not result["ok"] and "ImageFetchError" in result["error"]
    assert vm["domain"] not in domains(agent)
    assert f"{vm['domain']}-disk" not in agent.ensure_pool().listVolumes()


def test_an_unreachable_portal_fails_the_spawn(agent, sent):
    result = tasks.spawn_instance("op", instance(), spec("http://127.0.0.1:9/image"))
    assert not result["ok"] and result["host"] == "unit-host"


def test_console_log_on_the_test_driver_says_there_is_no_guest(agent):
    result = tasks.console_log("zenith-x", "x", 10)
    assert result["ok"] and result["supported"] is False
    assert "simulated host" in result["message"] and result["output"] == ""


def test_spawn_from_a_root_volume_uses_its_connection_and_fetches_nothing(agent, sent):
    from workers.messages import VolumeConnection

    vm = instance()
    root = VolumeConnection(type="file", path="/var/lib/zenith/volumes/volume-root.qcow2", format="qcow2")
    image = spec("http://127.0.0.1:9/never-fetched")
    result = tasks.spawn_instance("op", vm, {**image, "size": 0}, root_volume=root.as_dict())
    assert result["ok"], result
    xml = agent.domain_xml(vm["domain"])
    assert "/var/lib/zenith/volumes/volume-root.qcow2" in xml and "vda" in xml
    assert f"{vm['domain']}-disk" not in agent.ensure_pool().listVolumes()
    bad = tasks.spawn_instance("op", instance(), image, root_volume={"type": "file"})
    assert not bad["ok"] and "MessageError" in bad["error"]
