"""Views: a product list with add-to-basket forms, a basket kept in the session, quantity updates.

Every POST answers with a redirect (post/redirect/get), as shops do.
"""

from django.http import Http404, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

PRODUCTS = {
    1: ("Rain jacket", 59),
    2: ("Trail shoes", 89),
    3: ("Wool socks", 12),
    4: ("Water bottle", 15),
}


def _basket(request) -> dict[str, int]:
    return request.session.setdefault("basket", {})


def _lines(request) -> list[dict]:
    return [
        {"id": int(pid), "name": PRODUCTS[int(pid)][0], "quantity": qty, "total": qty * PRODUCTS[int(pid)][1]}
        for pid, qty in sorted(_basket(request).items(), key=lambda item: int(item[0]))
    ]


def product_list(request):
    products = [{"id": pid, "name": name, "price": price} for pid, (name, price) in PRODUCTS.items()]
    return render(request, "shop/product_list.html", {"products": products, "basket_count": sum(_basket(request).values())})


def basket(request):
    lines = _lines(request)
    return render(
        request,
        "shop/basket.html",
        {"lines": lines, "total": sum(line["total"] for line in lines), "basket_count": sum(_basket(request).values())},
    )


@require_POST
def add_to_basket(request, product_id: int):
    if product_id not in PRODUCTS:
        raise Http404("no such product")
    items = _basket(request)
    items[str(product_id)] = items.get(str(product_id), 0) + 1
    request.session.modified = True
    return redirect("basket")


@require_POST
def update_quantity(request, product_id: int):
    items = _basket(request)
    quantity = int(request.POST.get("quantity", "0") or 0)
    if quantity > 0:
        items[str(product_id)] = quantity
    else:
        items.pop(str(product_id), None)
    request.session.modified = True
    return redirect("basket")


def reviews(request):
    return render(request, "shop/reviews.html", {})


def csrf_failure(request, reason=""):
    """``CSRF_FAILURE_VIEW``: Django's 403, with the reason shown (stock Django shows it only with DEBUG)."""
    return HttpResponseForbidden(f"CSRF verification failed: {reason}", content_type="text/plain")
