"""A small Flask shop behind edge: an order form with a CSRF token kept in the session, post/redirect/get.

The CSRF protection is hand-made the way Flask shops usually do it (a random token in the signed
session cookie, echoed in a hidden field) plus the Origin check Django and Rails make: a POST whose
``Origin`` is not this host (as the ``Host`` header names it) is refused with 403. Through
``edge serve`` (which forwards the browser's ``Host``) both pass.
"""

from __future__ import annotations

import secrets

from flask import Flask, abort, redirect, render_template_string, request, session, url_for

app = Flask(__name__)
app.secret_key = "edge-storefront-tests-not-a-secret"

ITEMS = {"tent": "Two-person tent", "stove": "Camping stove", "lamp": "Head lamp"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<link rel="stylesheet" href="{{ url_for('static', filename='shop.css') }}"></head>
<body>
<header data-edge-widget="header"><a href="{{ url_for('index') }}">Camp shop</a>
  <a id="orders-link" href="{{ url_for('orders') }}">Orders ({{ orders|length }})</a></header>
<div data-edge-widget="promo" class="promo">Summer sale: 20% off every tent!</div>
{% if page == "index" %}
<ul class="offers">{% for i in range(12) %}<li>Offer {{ i }}: a fine thing at a fine price</li>{% endfor %}</ul>
<form method="post" action="{{ url_for('order') }}" id="order-form">
  <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
  <select name="item">{% for key, name in items.items() %}<option value="{{ key }}">{{ name }}</option>{% endfor %}</select>
  <input type="number" name="quantity" value="1" min="1">
  <button type="submit">Order</button>
</form>
{% else %}
<table id="orders">{% for o in orders %}<tr class="order"><td class="item">{{ o.item }}</td><td class="quantity">{{ o.quantity }}</td></tr>{% endfor %}</table>
{% endif %}
<aside data-edge-widget="recommendations"><p>Shoppers also bought: {% for i in range(200) %}thing {{ i }}, {% endfor %}</p></aside>
</body></html>
"""


def _csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


@app.get("/")
def index():
    return render_template_string(PAGE, title="Camp shop", page="index", items=ITEMS, orders=session.get("orders", []), csrf_token=_csrf_token())


@app.post("/order")
def order():
    origin = request.headers.get("Origin")
    if origin is not None and origin != request.host_url.rstrip("/"):
        abort(403, f"Origin {origin} is not {request.host_url}")
    sent = request.form.get("csrf_token", "")
    if not sent or not secrets.compare_digest(sent, session.get("csrf", "")):
        abort(403, "CSRF token missing or wrong")
    item = request.form.get("item", "")
    if item not in ITEMS:
        abort(400)
    session["orders"] = [*session.get("orders", []), {"item": ITEMS[item], "quantity": int(request.form.get("quantity", "1"))}]
    return redirect(url_for("orders"), code=303)


@app.get("/orders")
def orders():
    return render_template_string(PAGE, title="Orders", page="orders", items=ITEMS, orders=session.get("orders", []), csrf_token=_csrf_token())
