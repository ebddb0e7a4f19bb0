from rest_framework import serializers

from ..lifecycle import message_shown, shows_hosts
from ..models import Operation


class OperationSerializer(serializers.ModelSerializer):
    resource = serializers.SerializerMethodField()
    message = serializers.SerializerMethodField()

    class Meta:
        model = Operation
        fields = ["id", "kind", "state", "progress", "message", "resource", "created", "updated"]

    def get_resource(self, op) -> dict | None:
        if not op.resource_type:
            return None
        return {"type": op.resource_type, "id": op.resource_id}

    def get_message(self, op) -> str:
        return message_shown(op.message, shows_hosts(getattr(self.context.get("request"), "zenith", None)))


class OperationSummarySerializer(serializers.Serializer):
    """A resource's latest operation, as its rows show it (the message as the caller may see it)."""

    id = serializers.UUIDField()
    kind = serializers.CharField()
    state = serializers.CharField()
    progress = serializers.IntegerField()
    message = serializers.SerializerMethodField()

    def get_message(self, op) -> str:
        return message_shown(op.message, shows_hosts(self.context.get("ctx")))
