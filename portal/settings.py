"""Zenith settings, read from environment variables with embedded defaults.

With nothing set, Zenith runs on SQLite in ``var/`` and on kombu's filesystem transport
(an embedded broker that needs no server). ``DATABASE_URL`` and ``CELERY_BROKER_URL``
switch to PostgreSQL and Redis.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from portal.secret_key import DEFAULT_SECRET_KEY, KEY_FILE_NAME, choose_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ZENITH_VAR_DIR", BASE_DIR / "var")).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# "production" refuses to start on the public default key; anything else is a development run.
ZENITH_ENV = os.environ.get("ZENITH_ENV", "development").strip().lower()
ZENITH_SECRET_KEY_FILE = Path(os.environ.get("ZENITH_SECRET_KEY_FILE") or VAR_DIR / KEY_FILE_NAME)
SECRET_KEY, ZENITH_SECRET_KEY_SOURCE = choose_secret_key(os.environ, ZENITH_SECRET_KEY_FILE)
if ZENITH_ENV == "production" and SECRET_KEY == DEFAULT_SECRET_KEY:
    raise ImproperlyConfigured(
        "ZENITH_ENV=production with the public default SECRET_KEY: set DJANGO_SECRET_KEY, or run "
        "`manage.py ensure_secret_key` to generate one into " + str(ZENITH_SECRET_KEY_FILE) + "."
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "http://localhost:8000,http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "django_tables2",
    "identity",
    "workers",
    "networking",
    "storage",
    "compute",
    "portal",
]

MIDDLEWARE = [
    "portal.security.HeaderLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "portal.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "identity.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "identity.middleware.ProjectContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# --- HTTP hardening (all from the environment; the defaults suit `make run` on plain HTTP) ---------
# Behind a TLS-terminating proxy: ZENITH_SECURE_COOKIES=1, ZENITH_HSTS_SECONDS=31536000 and
# ZENITH_PROXY_SSL_HEADER=X-Forwarded-Proto (only if the proxy sets it and strips a client's own).
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("ZENITH_SECURE_COOKIES", False)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = env_bool("ZENITH_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = int(os.environ.get("ZENITH_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("ZENITH_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("ZENITH_HSTS_PRELOAD", False)
_proxy_ssl_header = os.environ.get("ZENITH_PROXY_SSL_HEADER", "").strip()
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# The dashboard loads every script from /static/ (no inline script); inline style attributes remain.
ZENITH_CSP = os.environ.get(
    "ZENITH_CSP",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'",
)
ZENITH_CSP_REPORT_ONLY = env_bool("ZENITH_CSP_REPORT_ONLY", False)
# Request headers larger than this together are refused (431); 0 turns the check off.
ZENITH_MAX_HEADER_BYTES = int(os.environ.get("ZENITH_MAX_HEADER_BYTES", str(32 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("ZENITH_MAX_BODY_BYTES", str(2_621_440)))

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "portal" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.zenith",
            ],
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'zenith.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        # A connection kept open (CONN_MAX_AGE) is checked before it is reused: one that died (the
        # database restarted) is replaced, not handed to the next request or task.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Worker processes started by the integration tests open the test database by path,
    # so it must be a file, never pytest-django's in-memory default.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-zenith.sqlite3")}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "identity.User"
AUTHENTICATION_BACKENDS = [
    "identity.throttle.ThrottledModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "/media/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "identity.api.authentication.ProjectTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "identity.api.parsers.DepthLimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "identity.api.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "identity.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Zenith API",
    "DESCRIPTION": "Zenith's native REST API (v1): identity, compute, storage, networking, operations.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Celery: the asynchronous plane -------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
BROKER_DIR = Path(os.environ.get("ZENITH_BROKER_DIR", VAR_DIR / "broker"))
if CELERY_BROKER_URL.startswith("filesystem"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    # kombu's filesystem transport with atomic message files (see workers/broker.py).
    CELERY_BROKER_TRANSPORT = "workers.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Exchange-to-queue bindings; kombu's default is ./control, relative to the working directory.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # The default 1 s polling makes every hop take a second; 20 ms was measured at ~22 ms a hop.
        "polling_interval": 0.02,
    }
    _default_results = f"file://{VAR_DIR / 'results'}"
    (VAR_DIR / "results").mkdir(parents=True, exist_ok=True)
else:
    # A message a worker took but never acknowledged (acks_late: it died holding it) goes back on its
    # queue after the visibility timeout. kombu's one hour default outlived every operation deadline
    # (issue 14); it must exceed the longest host task (an image download), and sit well inside the
    # deadlines. Connect and socket timeouts keep a publish to a dead broker short (see the policy below).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(os.environ.get("ZENITH_BROKER_VISIBILITY_TIMEOUT", "120")),
        # Look for such messages every 5 s (kombu's defaults scan every 10th call of every 10 s).
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 0.5,
        "socket_timeout": 5,
    }
    if CELERY_BROKER_URL.startswith(("redis", "rediss")):
        # kombu's Redis transport, guarded against acking on a connection that died (workers/broker.py).
        CELERY_BROKER_TRANSPORT = "workers.broker:RedisTransport"
    _default_results = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else None
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", _default_results)
CELERY_RESULT_EXPIRES = timedelta(hours=1)
CELERY_TASK_DEFAULT_QUEUE = "conductor"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fixup closes the database connection around every task (a PostgreSQL connect measured
# 33.6 ms against 0.6 ms for a query: issue 19). With this it closes a thread's connection only every
# that many tasks; between them ``portal.celery`` closes it by Django's rules (CONN_MAX_AGE, health).
CELERY_DB_REUSE_MAX = int(os.environ.get("ZENITH_DB_REUSE_MAX", "200"))
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers ride out a broker outage of any length: reconnect forever (Celery's default gives up after 100).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# A publish to an unreachable broker gives up within about a second: the Operation stays pending in the
# ledger (the outbox) and the sweeper sends it when the broker is back, so a request never waits long.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 0.5
CELERY_REDIS_SOCKET_TIMEOUT = 5
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "sweep-operations": {
        "task": "workers.tasks.sweep_operations",
        "schedule": float(os.environ.get("ZENITH_SWEEP_INTERVAL", "15")),
        "options": {"queue": "conductor", "expires": 60},
    },
    "reschedule-from-down-hosts": {
        "task": "compute.tasks.reschedule_from_down_hosts",
        "schedule": float(os.environ.get("ZENITH_SWEEP_INTERVAL", "15")),
        "options": {"queue": "conductor", "expires": 60},
    },
}

# --- Zenith ----------------------------------------------------------------------------------
ZENITH_ADMIN_PROJECT = os.environ.get("ZENITH_ADMIN_PROJECT", "admin")
ZENITH_TOKEN_TTL = timedelta(seconds=int(os.environ.get("ZENITH_TOKEN_TTL", str(12 * 3600))))
ZENITH_POLICY_FILE = os.environ.get("ZENITH_POLICY_FILE") or None
ZENITH_DEMO_PASSWORD = os.environ.get("ZENITH_DEMO_PASSWORD", "zenith-demo")
# Login throttling: this many failed logins of one username lock it for ZENITH_LOGIN_LOCKOUT seconds
# (0 turns throttling off); four times as many lock the client address.
ZENITH_LOGIN_MAX_FAILURES = int(os.environ.get("ZENITH_LOGIN_MAX_FAILURES", "5"))
ZENITH_LOGIN_LOCKOUT = int(os.environ.get("ZENITH_LOGIN_LOCKOUT", "300"))
# Operations never picked up are re-sent after this long; every operation fails past its deadline.
ZENITH_OPERATION_RESEND_AFTER = timedelta(seconds=int(os.environ.get("ZENITH_OPERATION_RESEND_AFTER", "30")))
# A running operation silent this long had its message lost (a broker restarted empty): it is sent again.
ZENITH_OPERATION_REDRIVE_AFTER = timedelta(
    seconds=int(
        os.environ.get(
            "ZENITH_OPERATION_REDRIVE_AFTER", os.environ.get("ZENITH_BROKER_VISIBILITY_TIMEOUT", "120")
        )
    )
)
ZENITH_OPERATION_MAX_SENDS = int(os.environ.get("ZENITH_OPERATION_MAX_SENDS", "5"))
ZENITH_OPERATION_DEFAULT_DEADLINE = timedelta(
    seconds=int(os.environ.get("ZENITH_OPERATION_DEFAULT_DEADLINE", "600"))
)
# Hosts: a host with no heartbeat for this long is "down"; allocation ratios of new hosts.
ZENITH_HOST_DOWN_AFTER = timedelta(seconds=float(os.environ.get("ZENITH_HOST_DOWN_AFTER", "60")))
# Host credentials (workers.hostkeys): every host-to-conductor message is signed with its host's key.
# Heartbeats, power reports and progress older than this are refused (answers have no age limit).
ZENITH_HOST_MESSAGE_MAX_AGE = timedelta(seconds=float(os.environ.get("ZENITH_HOST_MESSAGE_MAX_AGE", "120")))
# After `enroll_host --rotate`, the previous key stays valid this long (messages already on their way).
ZENITH_HOST_KEY_GRACE = timedelta(seconds=float(os.environ.get("ZENITH_HOST_KEY_GRACE", "300")))
# The conductor caches each host's key this long: a revocation takes effect within it.
ZENITH_HOST_KEY_CACHE_SECONDS = float(os.environ.get("ZENITH_HOST_KEY_CACHE_SECONDS", "10"))
# Nonces of fresh host messages a conductor process remembers (replays refused; ~320 bytes each).
ZENITH_HOST_REPLAY_CACHE = int(os.environ.get("ZENITH_HOST_REPLAY_CACHE", "100000"))
ZENITH_CPU_ALLOCATION_RATIO = float(os.environ.get("ZENITH_CPU_ALLOCATION_RATIO", "4.0"))
ZENITH_RAM_ALLOCATION_RATIO = float(os.environ.get("ZENITH_RAM_ALLOCATION_RATIO", "1.0"))
# Scheduler: "spread" (most free RAM first) or "pack" (least first); hosts tried per instance.
ZENITH_SCHEDULER_WEIGHER = os.environ.get("ZENITH_SCHEDULER_WEIGHER", "spread")
ZENITH_SCHEDULER_MAX_ATTEMPTS = int(os.environ.get("ZENITH_SCHEDULER_MAX_ATTEMPTS", "3"))
# Images: compute hosts download image bytes from this portal address with signed URLs valid this long.
ZENITH_PORTAL_URL = os.environ.get("ZENITH_PORTAL_URL") or (
    f"http://127.0.0.1:{os.environ.get('ZENITH_PORT') or '8000'}"
)
ZENITH_IMAGE_URL_TTL = int(os.environ.get("ZENITH_IMAGE_URL_TTL", "3600"))
# The largest image upload accepted, in bytes (API and dashboard): larger ones answer 413.
ZENITH_IMAGE_MAX_SIZE = int(os.environ.get("ZENITH_IMAGE_MAX_SIZE", str(10 * 1024**3)))
# Networking: project networks take a VLAN id from this range ("first-last", inclusive; a database
# constraint keeps two networks from sharing one); a project's default network gets this subnet.
ZENITH_NETWORK_VLAN_RANGE = os.environ.get("ZENITH_NETWORK_VLAN_RANGE", "100-4000")
ZENITH_DEFAULT_NETWORK_CIDR = os.environ.get("ZENITH_DEFAULT_NETWORK_CIDR", "10.0.0.0/24")
ZENITH_DEFAULT_DNS_SERVERS = [s for s in os.environ.get("ZENITH_DEFAULT_DNS_SERVERS", "").split(",") if s]
ZENITH_DEFAULT_QUOTAS = {
    "instances": 10,
    "cores": 20,
    "ram": 51200,
    "volumes": 10,
    "gigabytes": 1000,
    "snapshots": 10,
    "floating_ips": 10,
    "networks": 10,
    "ports": 50,
    "security_groups": 10,
    "security_group_rules": 100,
    "key_pairs": 100,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # kombu warns that the embedded filesystem transport has no hostname, on every connection.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "kombu.connection": {"level": "ERROR"}},
}
