"""Strict request bodies for every app's API: a key the endpoint does not take is refused (400 naming
it) instead of silently ignored, and a JSON value of the wrong type is refused instead of coerced
(``"5"`` is no integer, ``1`` no boolean, ``true`` no string).

Writable serializers derive from ``StrictSerializer`` or ``StrictModelSerializer`` (a model serializer
gets the strict fields for its model fields too). Form-encoded bodies carry every value as text, so
there the fields read text as DRF does; the unknown-key rule holds for every body.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import models
from django.http import QueryDict
from rest_framework import serializers
from rest_framework.settings import api_settings


def _form_body(field: serializers.Field) -> bool:
    """Whether the body being validated came form-encoded (every value text)."""
    return isinstance(getattr(field.root, "initial_data", None), QueryDict)


class StrictCharField(serializers.CharField):
    """A string, never a number or boolean turned into one (extra spec values of 1 or true are refused)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A whole number as JSON writes it: not a string of digits, not 2.0, not a boolean."""

    def to_internal_value(self, data):
        if not _form_body(self) and (isinstance(data, bool) or not isinstance(data, int)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """``true`` or ``false``: not 1, "yes" or "on"."""

    def to_internal_value(self, data):
        if not _form_body(self) and not isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class RefusesUnknownKeys:
    """Refuse, naming each, the keys of a body that are not writable fields of the serializer (read-only
    fields included: a client sending ``id`` or ``status`` must learn they are not taken)."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(str(key) for key in data if key not in writable)
            if unknown:
                raise serializers.ValidationError(
                    {key: ["This field is not taken here (unknown or read-only)."] for key in unknown}
                )
        elif data is not None:
            raise serializers.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: [f"Expected an object, got {type(data).__name__}."]}
            )
        return super().to_internal_value(data)


class StrictSerializer(RefusesUnknownKeys, serializers.Serializer):
    """Base of every writable plain serializer."""


class StrictModelSerializer(RefusesUnknownKeys, serializers.ModelSerializer):
    """Base of every writable model serializer: unknown keys refused, strict fields for model fields."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
        models.EmailField: serializers.EmailField,
        models.IntegerField: StrictIntegerField,
        models.PositiveIntegerField: StrictIntegerField,
        models.PositiveSmallIntegerField: StrictIntegerField,
        models.SmallIntegerField: StrictIntegerField,
        models.BigIntegerField: StrictIntegerField,
        models.BooleanField: StrictBooleanField,
    }


def refuse_body(data) -> None:
    """An endpoint that takes no body: any key sent is refused by name, never silently ignored."""
    if data:
        keys = sorted(str(key) for key in data) if isinstance(data, Mapping) else []
        raise serializers.ValidationError(
            {key: ["This endpoint takes no body."] for key in keys}
            or {api_settings.NON_FIELD_ERRORS_KEY: ["This endpoint takes no body."]}
        )
