"""The API's side of every async resource's lifecycle: one ``POST <resource>/{id}/<transition>/``
endpoint per declared transition, generated with its OpenAPI schema, answering 202 with the resource
and its operation (and a ``Location`` header naming the operation); a 409 names the state."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from identity.api.strict import refuse_body

from ..lifecycle import Lifecycle, Transition

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="a retried POST with the same key starts nothing more and answers with the resource "
    "as it is now; the same key for another action of the resource is a 409",
)


def accepted(viewset, obj, code: int = status.HTTP_202_ACCEPTED) -> Response:
    """The resource as every row of its list shows it (same queries), with its operation's URL."""
    obj = viewset.scope_queryset(viewset.model.objects.filter(pk=obj.pk)).get()
    response = Response(viewset.get_serializer(obj).data, status=code)
    operation_id = getattr(obj, "operation_id", None)
    if operation_id is not None and code == status.HTTP_202_ACCEPTED:
        response["Location"] = f"/api/v1/operations/{operation_id}/"
    return response


class Keyed:
    """A viewset whose creates and actions take an ``Idempotency-Key`` header."""

    def _key(self) -> str | None:
        return self.request.headers.get("Idempotency-Key")

    def create_accepted(self, request, body_class, service) -> Response:
        """A create that dispatches host work: the body checked by ``body_class``, ``service(ctx,
        idempotency_key=..., **fields)`` returning ``(obj, created)``; 202 with the operation, or 200
        for a retry with the same key (nothing more started)."""
        body = body_class(data=request.data)
        body.is_valid(raise_exception=True)
        obj, created = service(self.ctx, idempotency_key=self._key(), **body.validated_data)
        return accepted(self, obj, status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)


class TransitionEndpoints:
    """Mixin of a resource viewset: set ``lifecycle`` and every transition with an endpoint becomes
    ``POST {id}/<endpoint>/`` (no body) with its schema; ``run_transition`` serves hand-written ones
    (a reboot that chooses soft or hard from its body)."""

    lifecycle: Lifecycle | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        machine = cls.__dict__.get("lifecycle")
        if machine is None:
            return
        for transition in machine.transitions.values():
            path = transition.name if transition.endpoint is None else transition.endpoint
            if path and not hasattr(cls, path.replace("-", "_")):
                setattr(cls, path.replace("-", "_"), _endpoint(cls, machine, transition, path))

    def run_transition(self, name: str) -> Response:
        obj = self.lifecycle.begin(
            self.ctx, self.get_object(), name, idempotency_key=self.request.headers.get("Idempotency-Key")
        )
        return accepted(self, obj)


def _endpoint(cls, machine: Lifecycle, transition: Transition, path: str):
    name = transition.name

    def endpoint(self, request, pk=None):
        refuse_body(request.data)
        return self.run_transition(name)

    endpoint.__name__ = path.replace("-", "_")
    endpoint.__qualname__ = f"{cls.__name__}.{endpoint.__name__}"
    endpoint.__doc__ = transition.doc or f"{transition.label} the {machine.kind}."
    endpoint = extend_schema(
        request=None,
        responses={202: cls.serializer_class},
        parameters=[IDEMPOTENCY_KEY],
        summary=transition.label,
    )(endpoint)
    return action(detail=True, methods=["post"], url_path=path)(endpoint)
