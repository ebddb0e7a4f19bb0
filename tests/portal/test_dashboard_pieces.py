"""The dashboard's shared pieces exist once: one status-colour table (identity.dashboard) that knows
every status a table shows, one progress bar, one delete form, one polling attribute set. A copy
creeping back into an app's templates or tables fails here."""

from pathlib import Path

import pytest

from compute.models import Image, ImageMember
from identity import dashboard
from identity.models import ResourceAction
from networking.models import FloatingIP, Network, Port
from workers.models import Host, Operation

ROOT = Path(__file__).resolve().parents[2]
APPS = ("compute", "identity", "portal", "workers", "storage", "networking")
SHARED = ROOT / "identity" / "templates" / "dashboard"
NOVA_STATUSES = ("BUILD", "ACTIVE", "REBOOT", "HARD_REBOOT", "SHUTOFF", "PAUSED", "SUSPENDED", "ERROR")


def templates():
    for app in APPS:
        for path in (ROOT / app).glob("templates/**/*.html"):
            if SHARED not in path.parents:
                yield path


def sources():
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" not in path.parts and "openstack" not in path.parts:
                yield path


@pytest.mark.parametrize(
    "status",
    [
        *NOVA_STATUSES,
        *(s for s, _ in Image.STATUSES if s != Image.DELETED),
        *(s for s, _ in ImageMember.STATUSES),
        *(s for s, _ in Operation.STATES),
        Host.UP,
        Host.DOWN,
        ResourceAction.SUCCESS,
        ResourceAction.ERROR,
        "running",
        *(s for s, _ in (*Network.STATUSES, *Network.BUSY) if s != Network.DELETED),
        *(
            s
            for s, _ in (*Port.STATUSES, *Port.BUSY, *FloatingIP.STATUSES, *FloatingIP.BUSY)
            if s != "DELETED"
        ),
    ],
)
def test_every_status_shown_has_a_colour(status):
    assert dashboard.status_colour(status) != "dark", status


def test_the_colours_say_the_same_thing_for_every_kind():
    assert {dashboard.status_colour(s) for s in ("ACTIVE", "active", "up", "succeeded", "success")} == {
        "success"
    }
    assert {dashboard.status_colour(s) for s in ("ERROR", "killed", "failed", "down", "error")} == {"danger"}
    assert dashboard.status_badge("ERROR") == '<span class="badge text-bg-danger">ERROR</span>'


def test_no_app_keeps_its_own_status_colours_progress_bar_delete_form_or_polling():
    copies = []
    for path in templates():
        text = path.read_text()
        name = path.relative_to(ROOT)
        if 'class="progress-bar' in text and path.name != "launch.html":  # the wizard's bars move live (JS)
            copies.append(f"{name}: a progress bar of its own")
        if "btn-outline-danger" in text and "<form" in text:
            copies.append(f"{name}: a delete form of its own")
        if 'hx-trigger="every' in text:
            copies.append(f"{name}: polling of its own")
    for path in sources():
        text = path.read_text()
        if path.name != "dashboard.py" and ("STATUS_COLOURS" in text or '"text-bg-' in text):
            copies.append(f"{path.relative_to(ROOT)}: status colours of its own")
    assert copies == []


def test_the_progress_bar_and_delete_form_render(rf):
    bar = dashboard.progress_bar(95, label="19 of 20", colour=dashboard.usage_colour(95))
    assert 'class="progress-bar bg-danger"' in bar and 'style="width: 95%"' in bar and "19 of 20" in bar
    request = rf.get("/")
    form = dashboard.delete_form("/x/delete/", "Delete flavor <b>?", request=request, disabled="protected")
    assert 'action="/x/delete/"' in form and 'data-confirm="Delete flavor &lt;b&gt;?"' in form
    assert 'disabled title="protected"' in form and "csrfmiddlewaretoken" in form
