"""The dashboard's side of every async resource's lifecycle: its action buttons, from the declared
transitions (label, icon, style, confirmation), shown only where the state and the caller's role
allow them."""

from __future__ import annotations

from dataclasses import dataclass

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
