"""A small Flask shop (WSGI) for tests/storefronts: ``waitress-serve flaskshop.app:app``."""
