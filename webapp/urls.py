from django.contrib import admin
from django.urls import include, path

from webapp import pages
from webapp.api import devices
from webapp.api import views as api

urlpatterns = [
    path("", pages.index, name="index"),
    path("admin/", admin.site.urls),
    path("api/v1/frames", api.frames, name="api-frames"),
    path("api/v1/images/<str:sha256>.jpg", api.image, name="api-image"),
    path("api/v1/stats", api.stats, name="api-stats"),
    path("api/v1/devices", devices.register, name="api-devices"),
    path("api/v1/server-key", api.server_key, name="api-server-key"),
    path("api/v1/rewards/", include("webapp.payouts.urls")),
    path("healthz", api.health, name="health"),
]
