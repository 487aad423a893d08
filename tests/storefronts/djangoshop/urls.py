from django.contrib.auth import views as auth_views
from django.urls import path

from djangoshop import views

urlpatterns = [
    path("", views.product_list, name="products"),
    path("basket/", views.basket, name="basket"),
    path("basket/add/<int:product_id>/", views.add_to_basket, name="add"),
    path("basket/update/<int:product_id>/", views.update_quantity, name="update"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("fragments/reviews/", views.reviews, name="reviews"),
]
