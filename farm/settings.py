"""Django settings, read from the environment (see README "Configuration").

FARM_ENV chooses the posture: ``development`` (the default; DEBUG on, a
generated SECRET_KEY kept in var/), ``test``, or ``production`` (DEBUG must be
off, SECRET_KEY must be strong, hosts must be named).
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import django_stubs_ext
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from farm.client_ip import parse_networks
from farm.env import (
    database_settings,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_json_dict,
    env_list,
    env_path,
    env_str,
)

# Lets admin/queryset generics (ModelAdmin[Site]) be subscripted at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("FARM_VAR_DIR", BASE_DIR / "var", base=BASE_DIR)

FARM_ENV = env_choice("FARM_ENV", "development", ("development", "test", "production"))
PRODUCTION = FARM_ENV == "production"

DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)

_DEV_KEY_FILE = VAR_DIR / "secret_key"


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) must be set in production.")
    # Development and tests: one random key per checkout, kept so sessions survive restarts.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    if not _DEV_KEY_FILE.exists():
        _DEV_KEY_FILE.write_text(secrets.token_urlsafe(50))
        _DEV_KEY_FILE.chmod(0o600)
    return _DEV_KEY_FILE.read_text().strip()


SECRET_KEY = _secret_key()

# Secrets the panel must keep (site DB passwords, salts) are encrypted with this
# Fernet key (farm/crypto.py). Production must set it: a key derived from
# SECRET_KEY would make rotating SECRET_KEY destroy every stored secret, and one
# leaked value would give both. Development and tests derive it when unset.
FARM_ENCRYPTION_KEY = env_str("FARM_ENCRYPTION_KEY")


def check_production_posture(
    *, debug: bool, secret_key: str, allowed_hosts: list[str], encryption_key: str
) -> None:
    """Refuse to serve production with settings that would leak or be forgeable."""
    if debug:
        raise ImproperlyConfigured("DJANGO_DEBUG must be off when FARM_ENV=production.")
    if len(secret_key) < 50 or len(set(secret_key)) < 5 or secret_key.startswith("django-insecure"):
        raise ImproperlyConfigured(
            "SECRET_KEY is too weak for production: use at least 50 random characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
    if not allowed_hosts or "*" in allowed_hosts:
        raise ImproperlyConfigured("ALLOWED_HOSTS must name the panel's host(s) in production.")
    if not encryption_key:
        raise ImproperlyConfigured(
            "FARM_ENCRYPTION_KEY (or FARM_ENCRYPTION_KEY_FILE) must be set in production: "
            "a Fernet key (python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'). A farm that already stores secrets "
            "under the key derived from SECRET_KEY sets that one (README, Configuration)."
        )
    try:
        Fernet(encryption_key.encode())
    except ValueError as exc:
        raise ImproperlyConfigured(
            "FARM_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes)."
        ) from exc


ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
if PRODUCTION:
    check_production_posture(
        debug=DEBUG,
        secret_key=SECRET_KEY,
        allowed_hosts=ALLOWED_HOSTS,
        encryption_key=FARM_ENCRYPTION_KEY,
    )

CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_q",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "farm",
    "nodes",
    "sites",
    "backups",
    "monitoring",
]

_SECURITY = "django.middleware.security.SecurityMiddleware"
MIDDLEWARE = [
    "farm.health.HealthzMiddleware",  # before the host check and the HTTPS redirect
    _SECURITY,
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "farm.middleware.OperatorMfaMiddleware",
]

ROOT_URLCONF = "farm.urls"
WSGI_APPLICATION = "farm.wsgi.application"

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
                "farm.context_processors.farm",
                "nodes.context_processors.engine_banner",  # why provisioning cannot work now
            ],
        },
    },
]

DATABASES = {
    "default": database_settings(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'farm.sqlite3'}"),
        base_dir=BASE_DIR,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "farm.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "account_login"

# allauth: email login; nobody signs up, operators invite (farm.adapters).
ACCOUNT_ADAPTER = "farm.adapters.InviteOnlyAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGIN_ON_PASSWORD_RESET = True
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = False
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("FARM_MFA_ISSUER", "WordPress Farm")
# Operators (staff) must enrol a TOTP device, and pass it in every session, to use the panel.
FARM_REQUIRE_OPERATOR_MFA = env_bool("FARM_REQUIRE_OPERATOR_MFA", PRODUCTION)

# Who the client is (farm/client_ip.py): X-Forwarded-For is believed only from these
# peers (CIDRs; production behind Traefik names the network Traefik reaches the panel
# from). allauth's throttling asks farm.client_ip through the account adapter, so its
# own ALLAUTH_TRUSTED_PROXY_COUNT stays 0 (unused).
FARM_TRUSTED_PROXIES = parse_networks(env_list("FARM_TRUSTED_PROXIES", []))

# The cache holds the login throttle's counters, so every panel process and replica must
# share it: the panel's database by default (no extra service to run; the table is made
# by farm's migration 0003, so a fresh machine has it after `migrate`), or Redis when
# FARM_CACHE_URL names one (redis://host:6379/1). A per-process cache would let each
# process count failures on its own.
FARM_CACHE_TABLE = "farm_cache"  # the name farm/migrations/0003 creates
FARM_CACHE_URL = env_str("FARM_CACHE_URL")
if not FARM_CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": FARM_CACHE_TABLE,
        }
    }
elif FARM_CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": FARM_CACHE_URL,
        }
    }
else:
    raise ImproperlyConfigured(
        f"FARM_CACHE_URL={FARM_CACHE_URL!r}: use redis://, rediss:// or unix://, "
        "or leave it unset for the panel database."
    )

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"

# Email: printed to the console unless an SMTP server is configured.
if env_str("EMAIL_HOST"):
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": env_str("EMAIL_HOST"),
                "port": env_int("EMAIL_PORT", 587),
                "username": env_str("EMAIL_HOST_USER"),
                "password": env_str("EMAIL_HOST_PASSWORD"),
                "use_tls": env_bool("EMAIL_USE_TLS", True),
            },
        }
    }
else:
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "farm@localhost")

if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    # The header covers the panel's own host and the names below it, never the sites'.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    # Preloading is a promise to browsers that is slow to take back (months) and is
    # meant for a registrable domain, not a panel host: opt in, and check W021 says
    # nothing only when it is off on purpose (see SILENCED_SYSTEM_CHECKS below).
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    # Browsers are sent to HTTPS (Traefik says which scheme it got in X-Forwarded-Proto).
    # Swarm tasks call the panel over plain HTTP on the overlay network (Alertmanager's
    # webhook): those paths are not redirected, since a POST does not survive a redirect.
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = env_list("SECURE_REDIRECT_EXEMPT", [r"^alerts/webhook/"])
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# The task queue (django-q2) and the Operation engine: farm/settings_queue.py.
from farm.settings_queue import *  # noqa: E402, F403

# ---------------------------------------------------------------------------
# The farm: Docker Swarm, images and platform services (nodes/), sites (sites/).
# ---------------------------------------------------------------------------
DOCKER_HOST = env_str("DOCKER_HOST")  # empty: the local socket
# Several engines, overlay encryption, process roles, the local multi-node farm:
# farm/settings_nodes.py.
from farm.settings_nodes import *  # noqa: E402, F403

if FARM_STATIC_WHITENOISE:  # noqa: F405 (the panel image serves its own static files)
    MIDDLEWARE.insert(MIDDLEWARE.index(_SECURITY) + 1, "whitenoise.middleware.WhiteNoiseMiddleware")
    STORAGES = WHITENOISE_STORAGES  # noqa: F405

FARM_SWARM_ADVERTISE_ADDR = env_str("FARM_SWARM_ADVERTISE_ADDR", "127.0.0.1")
FARM_DOCKER_TIMEOUT = env_int("FARM_DOCKER_TIMEOUT", 60, minimum=5)
# "local": images built offline from Debian packages (manage.py build_images);
# "upstream": the public images (wordpress:*-fpm, nginx, redis, mariadb, traefik:v3 ...);
# "registry": the local images by digest from FARM_IMAGE_MANIFEST_FILE (settings_nodes.py).
FARM_IMAGES = env_choice(
    "FARM_IMAGES", "upstream" if PRODUCTION else "local", ("local", "upstream", "registry")
)
FARM_IMAGE_OVERRIDES: dict[str, str] = env_json_dict("FARM_IMAGE_OVERRIDES")
FARM_IMAGE_CACHE_DIR = env_path("FARM_IMAGE_CACHE_DIR", VAR_DIR / "cache" / "images", base=BASE_DIR)
FARM_STACK = "farm"  # the stack namespace of the platform services
FARM_PUBLIC_SHARDS = env_int("FARM_PUBLIC_SHARDS", 2, minimum=1)
FARM_SITES_PER_SHARD = env_int("FARM_SITES_PER_SHARD", 200, minimum=1)
FARM_NETWORK_POOL = env_str("FARM_NETWORK_POOL", "10.201.0.0/16")
FARM_HTTP_PORT = env_int("FARM_HTTP_PORT", 80, minimum=1)
FARM_HTTPS_PORT = env_int("FARM_HTTPS_PORT", 443, minimum=1)
FARM_LOCAL_HTTP_PORT = FARM_HTTP_PORT
FARM_MARIADB_HOST = env_str("FARM_MARIADB_HOST", "127.0.0.1")
FARM_MARIADB_PORT = env_int("FARM_MARIADB_PORT", 13306, minimum=1)
FARM_MARIADB_ADMIN_USER = env_str("FARM_MARIADB_ADMIN_USER", "root")
FARM_MARIADB_ADMIN_PASSWORD = env_str("FARM_MARIADB_ADMIN_PASSWORD")  # default: the farm_up secret
# How php-fpm reaches its database: "auto" (one machine) is the farm MariaDB's published
# port on the node's gateway; production names ProxySQL (host:port).
FARM_SITE_DB_HOST = env_str("FARM_SITE_DB_HOST", "auto")
# ProxySQL's admin interface (mysql://admin:pass@host:6032): when set, site users
# are added to mysql_users, loaded to runtime and saved to disk.
PROXYSQL_ADMIN_URL = env_str("PROXYSQL_ADMIN_URL")
PROXYSQL_HOSTGROUP = env_int("PROXYSQL_HOSTGROUP", 10, minimum=0)
FARM_SECRETS_DIR = env_path("FARM_SECRETS_DIR", VAR_DIR / "secrets", base=BASE_DIR)
# The routing Redis Traefik reads the sites' routes from (nodes/routes.py writes them):
# published on this port for the panel, password generated by farm_up by default.
FARM_ROUTES_HOST = env_str("FARM_ROUTES_HOST", "127.0.0.1")
FARM_ROUTES_PORT = env_int("FARM_ROUTES_PORT", 16379, minimum=1)
FARM_ROUTES_PASSWORD = env_str("FARM_ROUTES_PASSWORD")  # or _FILE; default: FARM_SECRETS_DIR
FARM_MARIADB_DATA = str(env_path("FARM_MARIADB_DATA", VAR_DIR / "mariadb", base=BASE_DIR))
FARM_PROMETHEUS_PORT = env_int("FARM_PROMETHEUS_PORT", 19090, minimum=1)
FARM_PROMETHEUS_URL = env_str("FARM_PROMETHEUS_URL", f"http://127.0.0.1:{FARM_PROMETHEUS_PORT}")
FARM_ALERTMANAGER_PORT = env_int("FARM_ALERTMANAGER_PORT", 19093, minimum=1)
FARM_ALERTMANAGER_URL = env_str(
    "FARM_ALERTMANAGER_URL", f"http://127.0.0.1:{FARM_ALERTMANAGER_PORT}"
)
# Prometheus and Alertmanager answer only with HTTP basic auth (their web config).
# The password defaults to the one farm_up generated (FARM_SECRETS_DIR/monitoring-password).
FARM_MONITORING_USER = env_str("FARM_MONITORING_USER", "farm")
FARM_MONITORING_PASSWORD = env_str("FARM_MONITORING_PASSWORD")
FARM_PROMETHEUS_TARGETS_DIR = env_path(
    "FARM_PROMETHEUS_TARGETS_DIR", VAR_DIR / "prometheus" / "targets", base=BASE_DIR
)
# CPU reservations (admission control, not limits) are those of the reference
# design in production (php-fpm 0.25 CPU per site: ~22 sites on 8 vCPU); elsewhere
# they are scaled down so a 2-core machine holds 150 idle sites (an idle site uses
# well under 1 % of a core). Memory reservations are never scaled.
FARM_CPU_RESERVATION_SCALE = env_float(
    "FARM_CPU_RESERVATION_SCALE", 1.0 if PRODUCTION else 0.03, minimum=0.0
)
# Where the panel reaches Traefik's web entry point to check a site answers.
FARM_EDGE_URL = env_str("FARM_EDGE_URL", f"http://127.0.0.1:{FARM_HTTP_PORT}")
FARM_CONVERGE_TIMEOUT = env_int("FARM_CONVERGE_TIMEOUT", 300, minimum=10)
FARM_REACHABLE_TIMEOUT = env_int("FARM_REACHABLE_TIMEOUT", 120, minimum=5)
FARM_SITES_ROOT = env_path("FARM_SITES_ROOT", VAR_DIR / "sites", base=BASE_DIR)
# Cloudflare DNS and domain claims (sites/dns_settings.py) and the backups' settings
# (backups/restic/settings.py, backups/mariadb/settings.py) are the apps' own, read where
# they are used (farm.env.app_setting); setting one here as well overrides the environment.

# Restores beside get "restore-<site>-<16 random hex>.<FARM_PREVIEW_DOMAIN>" (a wildcard
# DNS name in production; *.localhost needs none here).
FARM_PREVIEW_DOMAIN = env_str("FARM_PREVIEW_DOMAIN", "localhost")
# How many randomly chosen sites the daily restore drill restores beside.
FARM_DRILL_SAMPLE = env_int("FARM_DRILL_SAMPLE", 1, minimum=0)

# How the Swarm's tasks reach the panel (Alertmanager's webhook).
FARM_PANEL_URL_FROM_SWARM = env_str("FARM_PANEL_URL_FROM_SWARM", "http://172.17.0.1:8000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

TESTING = "pytest" in sys.modules or FARM_ENV == "test"
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    ACCOUNT_RATE_LIMITS = False  # type: ignore[assignment]
