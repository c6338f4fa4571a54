"""Django settings for RoadMesh. Every value comes from a ROADMESH_* variable (see README)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

from webapp.config import ServerSettings, env_bool, env_choice, env_path, env_str
from webapp.websettings import WebSettings, secret_key

BASE_DIR = Path(__file__).resolve().parent
SERVER = ServerSettings.from_env()
WEB = WebSettings.from_env()

DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = [
    h.strip()
    for h in env_str("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
    if h.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "webapp.accounts",
    "webapp.fleet",
    "webapp.jobs",
    "webapp.mapping",
    "webapp.payouts",
    "webapp.api",
    "webapp.review",
    "ninja",  # serves its Swagger UI files itself: no CDN
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "webapp.api.errors.JsonErrorMiddleware",
    "webapp.throttle.ThrottleMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it holds password hashes and
    sessions); SQLite gives its -wal and -shm files the same mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)


def _database() -> dict[str, object]:
    default_path = SERVER.data_dir / "roadmesh.sqlite3"
    url = env_str("DATABASE_URL", "")
    if not url:
        if not SERVER.data_dir.exists():
            SERVER.data_dir.mkdir(parents=True)
            os.chmod(SERVER.data_dir, 0o700)
        url = f"sqlite:///{default_path}"
    config: dict[str, object] = dict(dj_database_url.parse(url, conn_max_age=60))
    if config["ENGINE"] == "django.db.backends.sqlite3":
        name = str(config.get("NAME") or "")
        if name and name != ":memory:" and not name.startswith("file:"):
            _private_sqlite_file(Path(name))
        # WAL lets the web server read while ingest writes; IMMEDIATE avoids lock upgrades.
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;",
            "transaction_mode": "IMMEDIATE",
        }
        config["CONN_MAX_AGE"] = 0
    return config


DATABASES = {"default": _database()}
SECRET_KEY = secret_key(DEBUG, SERVER.data_dir)

_CACHE = env_choice("CACHE", "local", ("local", "database"))
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    if _CACHE == "local"
    else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "roadmesh_cache"}
}

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # locks an account out after failed passwords
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = WEB.login_failure_limit
AXES_COOLOFF_TIME = timedelta(minutes=WEB.login_lockout_minutes)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each alone: an account, an address
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "webapp.throttle.client_ip"
AXES_VERBOSE = False
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
LOGOUT_REDIRECT_URL = "/"

# HTTPS (ROADMESH_HTTPS=1 in production, behind a TLS proxy): `manage.py check --deploy` is clean.
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the review page's script reads it for its POSTs
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if WEB.https:
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = WEB.hsts_seconds
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = WEB.hsts_preload
if WEB.proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
REPO_DIR = BASE_DIR.parent
# MapLibre from npm (scripts/bootstrap.sh runs `npm ci`) and the basemap GeoJSON.
BASEMAP_DIR = env_path("BASEMAP_DIR", REPO_DIR / "sample_data" / "world")
STATICFILES_DIRS = [
    (prefix, path)
    for prefix, path in (
        ("maplibre-gl", REPO_DIR / "node_modules" / "maplibre-gl" / "dist"),
        ("basemap", BASEMAP_DIR),
        ("roadmesh", BASE_DIR / "static"),
    )
    if path.is_dir()
]
STATIC_ROOT = None  # nothing to collect: WhiteNoise serves from the installed apps
# Serve admin and app static files straight from the installed packages (no collectstatic).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LOGGING_CONFIG = None  # entry points configure logging themselves
