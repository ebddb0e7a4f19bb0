"""The dashboard's side of every async resource's lifecycle: its action buttons, from the declared
transitions (label, icon, style, confirmation), shown only where the state and the caller's role
allow them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.urls import reverse

from identity.context import Context

from .lifecycle import Lifecycle, Transition


@dataclass(frozen=True)
class Button:
    """One action as a dashboard button; ``confirm`` (with ``{name}``) asks before posting."""

    action: str
    label: str
    icon: str
    style: str
    policy: str
    confirm: str = ""
    message: str = ""  # told once it started (or done), with ``{name}``

    @classmethod
    def of(cls, machine: Lifecycle, transition: Transition) -> Button:
        return cls(
            action=transition.name,
            label=transition.label,
            icon=transition.icon,
            style=transition.style,
            policy=machine.policy_of(transition),
            confirm=transition.confirm,
            message=transition.message,
        )

    def render(self, name: str) -> dict:
        return {
            "action": self.action,
            "label": self.label,
            "icon": self.icon,
            "style": self.style,
            "confirm": self.confirm.format(name=name),
        }


def transition_buttons(machine: Lifecycle) -> dict[str, Button]:
    """Every transition of a lifecycle as a button, in declared order."""
    return {name: Button.of(machine, t) for name, t in machine.transitions.items()}


def buttons_for(ctx: Context, machine: Lifecycle, obj, extra: list[Button] = ()) -> list[dict]:
    """The buttons to show for ``obj``: the transitions its state allows, then ``extra`` (actions
    done inside the request, such as lock), each only if the caller's role may use it."""
    allowed = set(machine.allowed(obj))
    shown = [Button.of(machine, machine.transitions[name]) for name in machine.transitions if name in allowed]
    return [b.render(obj.name) for b in (*shown, *extra) if ctx.can(b.policy)]


def with_urls(buttons: list[dict], urls: dict, pk) -> list[dict]:
    """Give each button its URL: ``urls`` maps an action to (URL name, whether it opens a page with a
    form rather than posting); the URL takes the resource's ``pk``."""
    for button in buttons:
        name, button["form"] = urls[button["action"]]
        button["url"] = reverse(name, args=[pk])
    return buttons


# --- operations traced to their resource ---------------------------------------------------------


@dataclass(frozen=True)
class ResourceLink:
    """How the operations page names and links a resource type an app owns (registered by the app,
    as its lifecycle is): ``model`` has a ``name``; ``url(pk)`` is its page; ``admin_only`` resources
    (hosts) are named to cloud admins only, as faults name hosts only to them."""

    model: type
    url: Callable[[object], str]
    admin_only: bool = False


_links: dict[str, ResourceLink] = {}


def register_resource_link(
    resource_type: str, model: type, url: Callable[[object], str], *, admin_only=False
):
    _links[resource_type] = ResourceLink(model, url, admin_only)


def _shown(ctx: Context) -> dict[str, ResourceLink]:
    return {kind: link for kind, link in _links.items() if ctx.is_admin or not link.admin_only}


def resource_names(ctx: Context, operations: Iterable) -> dict[tuple[str, str], tuple[str, str]]:
    """``(resource_type, resource_id) -> (name, url)`` for the operations of one page: one query per
    registered resource type on the page, whatever the number of rows."""
    wanted: dict[str, set] = defaultdict(set)
    for op in operations:
        if op.resource_id is not None:
            wanted[op.resource_type].add(op.resource_id)
    found = {}
    for kind, link in _shown(ctx).items():
        if wanted.get(kind):
            for pk, name in link.model.objects.filter(pk__in=wanted[kind]).values_list("pk", "name"):
                found[(kind, str(pk))] = (name, link.url(pk))
    return found


def resources_named(ctx: Context, name: str) -> list:
    """The ids of the resources of every registered type called ``name`` (the operations filter)."""
    ids = []
    for link in _shown(ctx).values():
        ids += link.model.objects.filter(name=name).values_list("pk", flat=True)
    return ids
