"""Who is asking, and what they may read.

The public surface (README "Public surface"): anyone reads map features, coverage, the
road tiles and the change feed; frames, their images and drives need an API key (any
consumer key reads every frame, as Mapillary's and Hivemapper's APIs do) or the owner's
login (a driver reads their own devices' frames only). Operators (staff) read everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import HttpRequest

from webapp.accounts.models import User
from webapp.api.errors import ApiError
from webapp.api.keys import request_key
from webapp.api.models import ApiKey
from webapp.fleet.models import Frame


@dataclass(frozen=True)
class Reader:
    user: User | None
    key: ApiKey | None

    @property
    def reads_every_frame(self) -> bool:
        if self.key is not None:
            return True
        return self.user is not None and (
            self.user.is_staff or self.user.role == User.Role.OPERATOR
        )

    def frames(self, query: QuerySet[Frame]) -> QuerySet[Frame]:
        """The frames of `query` this reader may see; 401 for an anonymous reader."""
        if self.reads_every_frame:
            return query
        if self.user is None:
            raise ApiError(
                401,
                "frames need an API key (Authorization: Bearer rmk_...) or the owner's login",
                headers={"WWW-Authenticate": 'Bearer realm="roadmesh"'},
            )
        return query.filter(device__owner=self.user)


def reader(request: HttpRequest) -> Reader:
    key = request_key(request)
    if key is not None:
        return Reader(key.owner, key)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return Reader(user, None)  # type: ignore[arg-type]
    return Reader(None, None)


def signed_in(request: HttpRequest) -> User:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise ApiError(401, "sign in first")
    return user  # type: ignore[return-value]
