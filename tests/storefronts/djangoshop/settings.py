"""Django settings of the test shop: stock apps, sqlite, whitenoise for the one stylesheet."""

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent

SECRET_KEY = "edge-storefront-tests-not-a-secret"
DEBUG = False
# Django compares ALLOWED_HOSTS without the port, so one entry covers the shop's own port and
# edge's (edge forwards the browser's Host by default).
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
# Behind `edge serve --no-preserve-host` Django sees the shop's own host; the browser's Origin names
# edge's. Trusting X-Forwarded-Host (which edge sets) makes the CSRF Origin check compare the right host.
USE_X_FORWARDED_HOST = os.environ.get("SHOP_USE_X_FORWARDED_HOST") == "1"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "djangoshop",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "djangoshop.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("SHOP_DB", str(HERE / "shop.sqlite3"))}}
SESSION_ENGINE = "django.contrib.sessions.backends.db"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
STATIC_URL = "/static/"
WHITENOISE_USE_FINDERS = True  # serve from the app's static/ without collectstatic
USE_TZ = True
CSRF_FAILURE_VIEW = "djangoshop.views.csrf_failure"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
