"""The stock OpenStack clients against a live Zenith: pytest-django's live server (the portal, which
serves the OpenStack-compatible API), a real conductor and simulated host agents (libvirt's test
driver), and python-openstackclient / openstacksdk from PyPI in their own virtualenv, ``.venv-osc``
(``make osc-venv``; ``ZENITH_OSC_VENV`` names another one, e.g. a worktree's use of main's), run as
subprocesses exactly as a user runs them.

Without that virtualenv the tests are skipped with the reason, unless ZENITH_REQUIRE_OPENSTACK_CLIENTS=1
(CI, and ``make test``, which installs it first): then they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from compute import services
from storage.models import VolumeType
from tests.factories import PASSWORD
from tests.integration.conftest import PLANE_KEY, Plane, clear_broker, shut_down
from tests.integration.test_async_plane import wait_for
from workers import processes
from workers.models import Host

from .test_views import issue

OSC_VENV = Path(os.environ.get("ZENITH_OSC_VENV") or Path(settings.BASE_DIR) / ".venv-osc")
OSC = OSC_VENV / "bin" / "openstack"
OSC_PYTHON = OSC_VENV / "bin" / "python"
HOSTS = ("os-host-a", "os-host-b")
# A qcow2 magic and padding: enough for the agents (the simulated hosts boot nothing).
IMAGE_BYTES = b"QFI\xfb" + b"\0" * 4092 + b"zenith openstack image" * 2000
CLI_TIMEOUT = 180


def require_clients() -> None:
    if OSC.exists() and OSC_PYTHON.exists():
        return
    reason = f"the OpenStack clients are not installed in {OSC_VENV} (run `make osc-venv`)"
    if os.environ.get("ZENITH_REQUIRE_OPENSTACK_CLIENTS") == "1":
        pytest.fail(f"ZENITH_REQUIRE_OPENSTACK_CLIENTS=1: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def os_plane(request, django_db_setup, django_db_blocker, live_server, tmp_path_factory):
    """A conductor and two simulated host agents that fetch images from the live server."""
    require_clients()
    clear_broker()
    workers = Plane(tmp_path_factory.mktemp("worker-logs"))
    workers.env.update(ZENITH_PORTAL_URL=live_server.url, ZENITH_HEARTBEAT_INTERVAL="1")
    request.node.stash[PLANE_KEY] = workers
    uri = processes.simulated_host_uri()
    try:
        workers.start(workers.launch_conductor(), *(workers.launch_agent(h, uri) for h in HOSTS))
        yield workers
    finally:
        shut_down(workers, django_db_blocker)


@dataclass
class Cli:
    """The ``openstack`` command with a user's OS_* variables (nothing else of the caller's OS_*)."""

    env: dict[str, str]
    plane: Plane | None = None

    def run(
        self, *args: str, check: bool = True, timeout: float = CLI_TIMEOUT
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(OSC), *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"openstack {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}\n{proc.stdout}\n"
                f"{self.plane.logs() if self.plane else ''}"
            )
        return proc

    def json(self, *args: str):
        out = self.run(*args, "-f", "json").stdout
        # ``--wait`` writes "Progress: N" (the server's progress field) before the document.
        start = min((i for i in (out.find("{"), out.find("[")) if i >= 0), default=0)
        return json.loads(out[start:])

    def value(self, *args: str) -> str:
        return self.run(*args, "-f", "value").stdout.strip()


def client_env(tmp_path: Path, **os_vars: str) -> dict[str, str]:
    """The test's environment without any OS_* of its own, with HOME in ``tmp_path`` (no clouds.yaml
    of the machine's user is read) and ``os_vars``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(HOME=str(tmp_path), PYTHONWARNINGS="ignore", **os_vars)
    return env


def os_vars(live_server, username: str, project: str) -> dict[str, str]:
    """The OS_* variables the README tells a user to set."""
    return {
        "OS_AUTH_URL": f"{live_server.url}/identity",
        "OS_IDENTITY_API_VERSION": "3",
        "OS_USERNAME": username,
        "OS_PASSWORD": PASSWORD,
        "OS_PROJECT_NAME": project,
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_REGION_NAME": "RegionOne",
    }


@pytest.fixture
def os_cloud(cloud, os_plane, live_server, settings):
    """The cloud's users, the seeded flavors and default volume type, and both hosts registered
    (again: every test flushes)."""
    settings.ZENITH_PORTAL_URL = live_server.url
    services.seed_flavors()
    VolumeType.objects.get_or_create(name="default", defaults={"backend": "local", "is_default": True})
    wait_for(lambda: Host.objects.filter(name__in=HOSTS).count() == len(HOSTS), "the hosts to register")
    return cloud


@pytest.fixture
def image_file(tmp_path) -> Path:
    path = tmp_path / "cirros.qcow2"
    path.write_bytes(IMAGE_BYTES)
    return path


# Tokens of the cloud's users through the Keystone API, for the Django test client's tests.


@pytest.fixture
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def member(client, cloud):
    return {"X-Auth-Token": issue(client, cloud.member, cloud.project)}


@pytest.fixture
def admin(client, cloud):
    return {"X-Auth-Token": issue(client, cloud.admin, cloud.admin_project)}


@pytest.fixture
def other(client, cloud):
    return {"X-Auth-Token": issue(client, cloud.other_member, cloud.other_project)}
