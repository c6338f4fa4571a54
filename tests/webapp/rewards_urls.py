"""The rewards API's routes, for tests until webapp/urls.py includes them."""

from django.urls import include, path

urlpatterns = [path("api/v1/rewards/", include("webapp.payouts.urls"))]
