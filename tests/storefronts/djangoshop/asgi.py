"""Django's ASGI application for the test shop (``uvicorn djangoshop.asgi:application``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangoshop.settings")
application = get_asgi_application()
