"""Create the shop's tables and its one shopper: ``python -m djangoshop.bootstrap USERNAME PASSWORD``."""

import os
import sys

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangoshop.settings")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    username, password = sys.argv[1], sys.argv[2]
    get_user_model().objects.create_user(username, password=password)


if __name__ == "__main__":
    main()
