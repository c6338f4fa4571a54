from django.contrib import admin
from django.urls import include, path

from webapp import downloads, ogc, pages, tiles
from webapp.accounts import views as accounts
from webapp.api import errors
from webapp.api.v1 import api, health
from webapp.review import views as review

urlpatterns = [
    path("", pages.index, name="index"),
    path("admin/", admin.site.urls),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),
    path("accounts/logout/", accounts.LogoutView.as_view(), name="logout"),
    path("account/keys", accounts.keys, name="account-keys"),
    path("dashboard/", pages.dashboard, name="dashboard"),
    path("licenses/<str:name>", pages.licence, name="licence"),
    path("review/", review.queue, name="review"),
    path("review/next", review.next_task, name="review-next"),
    path("review/tasks/<int:task_id>/vote", review.vote, name="review-vote"),
    path("review/frames/<int:frame_id>/missed", review.missed, name="review-missed"),
    path("api/v1/rewards/", include("webapp.payouts.urls")),
    path("api/v1/", api.urls),
    path("tiles/<str:layer>/<int:z>/<int:x>/<int:y>.mvt", tiles.tile, name="tile"),
    path("ogc/", ogc.landing, name="ogc"),
    path("ogc/conformance", ogc.conformance, name="ogc-conformance"),
    path("ogc/collections", ogc.collections, name="ogc-collections"),
    path("ogc/collections/<str:cid>", ogc.collection, name="ogc-collection"),
    path("ogc/collections/<str:cid>/items", ogc.items, name="ogc-items"),
    path("ogc/collections/<str:cid>/items/<str:fid>", ogc.item, name="ogc-item"),
    path("downloads/<str:dataset>.<str:fmt>", downloads.download, name="download"),
    path("healthz", health, name="health"),
]

handler400 = errors.bad_request
handler403 = errors.forbidden
handler404 = errors.not_found
handler500 = errors.server_error
