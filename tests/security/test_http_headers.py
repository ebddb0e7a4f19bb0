"""Hardening settings and headers (issue 16, item 5): a Content-Security-Policy on every page that the
dashboard and the API docs keep working under (no inline script), and secure cookies, HSTS and the
proxy SSL header read from the environment with plain-HTTP-safe defaults."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.factories import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
SHOW = (
    "import django, json; django.setup(); from django.conf import settings as s; print(json.dumps(["
    "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER, "
    "s.ZENITH_CSP, s.ZENITH_CSP_REPORT_ONLY, s.SECURE_SSL_REDIRECT]))"
)


def settings_with(tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ZENITH_", "SECURE"))}
    environ.update(ZENITH_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="portal.settings", **env)
    result = subprocess.run(
        [sys.executable, "-c", SHOW], cwd=ROOT, env=environ, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_defaults_suit_plain_http_and_the_environment_hardens(tmp_path):
    secure, csrf_secure, hsts, proxy, csp, report_only, redirect = settings_with(tmp_path)
    assert (secure, csrf_secure, hsts, proxy, report_only, redirect) == (False, False, 0, None, False, False)
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    hardened = settings_with(
        tmp_path,
        ZENITH_SECURE_COOKIES="1",
        ZENITH_HSTS_SECONDS="31536000",
        ZENITH_PROXY_SSL_HEADER="X-Forwarded-Proto",
        ZENITH_CSP="default-src 'none'",
        ZENITH_CSP_REPORT_ONLY="true",
        ZENITH_SSL_REDIRECT="1",
    )
    assert hardened == [
        True,
        True,
        31536000,
        ["HTTP_X_FORWARDED_PROTO", "https"],
        "default-src 'none'",
        True,
        True,
    ]


def test_pages_carry_the_csp_and_have_no_inline_script(cloud, client):
    client.force_login(cloud.member)
    for path in (
        "/login/",
        "/dashboard/overview/",
        "/dashboard/compute/images/",
        "/dashboard/compute/instances/launch/",
        "/api/docs/",
    ):
        response = client.get(path, follow=True)
        assert response.status_code == 200, path
        assert "script-src 'self'" in response["Content-Security-Policy"], path
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", response.content.decode(), re.S)
        inline = [body for attrs, body in scripts if "src=" not in attrs and body.strip()]
        assert inline == [], (path, inline[:1])
    assert client.get("/api/docs/?script=").status_code == 200  # the docs' script, served as a file


def test_csp_report_only(cloud, client, settings):
    settings.ZENITH_CSP_REPORT_ONLY = True
    response = client.get("/login/")
    assert "Content-Security-Policy" not in response
    assert response["Content-Security-Policy-Report-Only"] == settings.ZENITH_CSP


def test_hsts_and_secure_cookies_when_set(cloud, client, settings):
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SESSION_COOKIE_SECURE = True
    client.force_login(cloud.member)
    response = client.get("/dashboard/overview/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=3600"
    client.logout()
    response = client.post("/login/", {"username": "alice", "password": PASSWORD}, secure=True)
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert response.cookies["sessionid"]["secure"] is True
