"""Typed conductor <-> agent messages survive JSON and refuse what does not match them."""

import json

import pytest

from workers.messages import (
    MessageError,
    StorageBackendReport,
    StorageReport,
    VolumeConnection,
    VolumeRequest,
    VolumeResult,
    VolumeSource,
)


def roundtrip(message):
    return type(message).from_dict(json.loads(json.dumps(message.as_dict())))


def test_nested_messages_survive_json():
    request = VolumeRequest(
        backend="local", name="volume-1", size_gb=2, source=VolumeSource(kind="image", image={"url": "u"})
    )
    assert roundtrip(request) == request
    result = VolumeResult(ok=True, connection=VolumeConnection(type="network", path="p/i", hosts=("m:6789",)))
    assert roundtrip(result) == result
    report = StorageReport(
        backends=(
            StorageBackendReport(
                name="local", type="dir", pool="p", capacity_bytes=10, available_bytes=5, reaches=("*",)
            ),
        )
    )
    assert roundtrip(report) == report


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"backend": "b", "name": "n", "sizegb": 1}, "unknown keys sizegb"),
        ({"backend": "b"}, "missing keys name"),
        ("volume-1", "expected an object"),
    ],
)
def test_from_dict_refuses_what_does_not_match(data, says):
    with pytest.raises(MessageError, match=says):
        VolumeRequest.from_dict(data)


def test_nested_unknown_key_is_refused_too():
    with pytest.raises(MessageError, match="VolumeSource: unknown keys url"):
        VolumeRequest.from_dict({"backend": "b", "name": "n", "source": {"kind": "image", "url": "u"}})
