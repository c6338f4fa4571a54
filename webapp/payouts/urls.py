"""Routes under /api/v1/rewards/ (included from webapp/urls.py)."""

from django.urls import path

from webapp.payouts import views

urlpatterns = [
    path("proof/<str:wallet>", views.proof, name="rewards-proof"),
    path("files/<str:name>", views.epoch_file, name="rewards-file"),
]
