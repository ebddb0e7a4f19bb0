"""The minimum that proves the project stands up: token, project list, scoping."""

from django.urls import reverse


def test_member_gets_token_and_lists_only_their_projects(cloud, clients):
    response = clients["member"].get("/api/v1/identity/projects/")
    assert response.status_code == 200
    assert [p["name"] for p in response.json()["results"]] == ["alpha"]


def test_other_project_is_404(cloud, clients):
    response = clients["other"].get(f"/api/v1/identity/projects/{cloud.project.pk}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_anonymous_is_401(clients):
    response = clients["anonymous"].get("/api/v1/identity/projects/")
    assert response.status_code == 401
    assert "error" in response.json()


def test_schema_and_docs_served(client):
    assert client.get(reverse("api-schema")).status_code == 200
    assert client.get(reverse("api-docs")).status_code == 200
