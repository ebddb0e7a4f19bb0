"""The budget of one launch, from the POST to ACTIVE: SQL statements in each process it crosses (the
portal's request, the conductor's build task, the conductor's callback with the host's answer) and the
broker messages between them. Each phase runs here in-process, as its worker would run it, with the
broker's ``send_task`` recorded; the host's answer is what the agent's spawn returns.

Pinned: a regression shows up, and so does an improvement (lower the budget with it).
"""

import pytest
from celery import current_app
from django.db import connection
from django.test.utils import CaptureQueriesContext

from compute import tasks as compute_tasks  # noqa: F401  (registers the conductor tasks run here)
from compute.models import Instance
from tests.conftest import token_client
from tests.hostsigning import answer as signed_answer
from tests.hostsigning import enroll
from workers import tasknames
from workers import tasks as worker_tasks  # noqa: F401

from .conftest import make_flavor, make_host
from .instance_helpers import make_image

pytestmark = pytest.mark.django_db

URL = "/api/v1/compute/instances/"
# Statements, not counting the SAVEPOINT/RELEASE of the test's own transaction (BEGIN/COMMIT in production,
# which Django does not log). Measured on SQLite and PostgreSQL alike.
# The POST: token, roles, flavor, image, the project's quota row locked, limits,
# usage, Operation, Instance, action; the instance read again for the answer, with its volume
# attachments (none yet: storage's prefetch); and the on-commit publish of the conductor's task (claim
# the Operation's send, read its payload).
POST_STATEMENTS = 14
# The conductor's build task: start the Operation (UPDATE, read back), the instance read, then locked,
# the one query over hosts, the conditional claim, the placement, progress; the host the spawn goes to
# recorded on the Operation (only that host's signed answer settles it: workers.hostkeys).
BUILD_STATEMENTS = 9
# The callback with the host's answer: the Operation read to check who signed it (the host's key is
# cached after the warm-up launch); the instance read, then locked; ACTIVE; the Operation succeeded;
# the action's event finished.
CALLBACK_STATEMENTS = 6
# portal -> conductor (build), conductor -> compute.<host> (spawn, its answer linked back to the conductor)
HOPS = [tasknames.BUILD_INSTANCE, tasknames.AGENT_SPAWN_INSTANCE]


class Sent(list):
    def __call__(self, name, args=None, kwargs=None, **options):
        self.append((name, dict(kwargs or {}), options))


@pytest.fixture
def sent(monkeypatch):
    recorder = Sent()
    monkeypatch.setitem(vars(current_app._get_current_object()), "send_task", recorder)
    return recorder


def statements(fn):
    with CaptureQueriesContext(connection) as captured:
        result = fn()
    sql = [q["sql"] for q in captured.captured_queries]
    return result, [s for s in sql if not s.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


def launch_to_active(client, sent, name, django_capture_on_commit_callbacks, key: bytes):
    """One launch through every phase; returns each phase's statements and the messages sent."""
    sent.clear()

    def post():
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(URL, {"name": name, "flavor": "m1.tiny", "image": "cirros"}, format="json")

    response, post_sql = statements(post)
    assert response.status_code == 202, response.content
    [(task, kwargs, _)] = sent
    assert task == tasknames.BUILD_INSTANCE
    _, build_sql = statements(lambda: current_app.tasks[task].run(**kwargs))
    spawn = [(t, k, o) for t, k, o in sent if t == tasknames.AGENT_SPAWN_INSTANCE]
    [(_, spawn_kwargs, options)] = spawn
    link = options["link"]
    answer = {"ok": True, "host": "h1", "power_state": "running", "domain_type": "test", "message": "up"}
    signed = signed_answer("h1", key, answer, **link.kwargs)  # as the agent of h1 publishes it
    _, callback_sql = statements(lambda: current_app.tasks[link.task].run(answer, **signed))
    instance = Instance.objects.get(pk=response.json()["id"])
    assert (instance.status, instance.host.name) == ("ACTIVE", "h1")
    return post_sql, build_sql, callback_sql, [t for t, _, _ in sent]


def test_post_to_active_fits_its_statement_and_message_budget(
    cloud, sent, django_capture_on_commit_callbacks
):
    make_flavor("m1.tiny", vcpus=1, ram_mb=512, disk_gb=1)
    make_image()
    make_host("h1")
    key = enroll("h1")
    client = token_client(cloud.member, cloud.project)
    launch_to_active(client, sent, "warm", django_capture_on_commit_callbacks, key)  # caches warmed
    post_sql, build_sql, callback_sql, hops = launch_to_active(
        client, sent, "measured", django_capture_on_commit_callbacks, key
    )
    report = "\n".join(
        f"--- {phase} ({len(sql)})\n" + "\n".join(s[:160] for s in sql)
        for phase, sql in (("post", post_sql), ("build", build_sql), ("callback", callback_sql))
    )
    assert hops == HOPS, hops
    assert (len(post_sql), len(build_sql), len(callback_sql)) == (
        POST_STATEMENTS,
        BUILD_STATEMENTS,
        CALLBACK_STATEMENTS,
    ), report
