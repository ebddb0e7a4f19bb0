"""Every storage model is in the Django admin: listed, searchable and filterable, and read-only."""

import uuid

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client

from .conftest import attached, available

pytestmark = pytest.mark.django_db


def test_every_storage_model_is_registered_read_only(cloud, pool):
    volume = attached(cloud, available(cloud), uuid.uuid4())
    cloud.admin.is_staff = cloud.admin.is_superuser = True
    cloud.admin.save()
    client = Client()
    client.force_login(cloud.admin)
    for model in apps.get_app_config("storage").get_models():
        assert model in admin.site._registry, model
        url = f"/django-admin/storage/{model._meta.model_name}/"
        assert client.get(url, {"q": volume.name}).status_code == 200, url
        assert client.get(f"{url}add/").status_code == 403, url
