"""The review station's web application: pages for people, and the JSON API they (and keying tools) use.

Every route but the login and the static files answers 401 without a session;
every request that changes something needs the session's CSRF token in the
``X-CSRF-Token`` header. Items are named by opaque ids, never by a file, and
their pictures are served only from the results folder, never cached.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from redis import Redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digits import reviewers
from digits.contracts import AUDIT_KIND, REVIEW_KIND, ReviewItem
from digits.reviews import Conflict, ReviewQueue, UnknownItem
from digits.settings import Settings
from review.throttle import LoginThrottle

HERE = Path(__file__).resolve().parent

SECRET_KEY = "digits:review:secret"
"""The key that signs session cookies, made once and shared by every station on this Redis."""

SESSION_HOURS = 12
"""How long a login lasts."""

GROUP_SIZE = 24
"""Single digits the group view shows at once."""

GROUP_LOOKAHEAD = 400
"""Waiting items looked through to find single digits read alike."""

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""Sent with every answer: nothing from elsewhere runs in a page, nothing is framed, nothing is kept by a cache."""


def create_app(settings: Settings) -> Starlette:
    """The station for the service ``settings`` describe (its Redis and results folder)."""
    redis = Redis.from_url(settings.redis_url)
    station = Station(redis, ReviewQueue(redis, settings.results, settings.review_lease_seconds), settings)
    redis.set(SECRET_KEY, secrets.token_urlsafe(48), nx=True)
    routes = [
        Route("/", station.page("station.html"), methods=["GET"]),
        Route("/group", station.page("group.html"), methods=["GET"]),
        Route("/stats", station.page("stats.html"), methods=["GET"]),
        Route("/api/login", station.login, methods=["POST"]),
        Route("/api/logout", station.logout, methods=["POST"]),
        Route("/api/next", station.next_item, methods=["GET"]),
        Route("/api/items/{item}", station.decide, methods=["POST"]),
        Route("/api/items/{item}/skip", station.skip, methods=["POST"]),
        Route("/api/items/{item}/undo", station.undo, methods=["POST"]),
        Route("/api/items/{item}/image", station.image("crop"), methods=["GET"]),
        Route("/api/items/{item}/page", station.image("page_image"), methods=["GET"]),
        Route("/api/group", station.group, methods=["GET"]),
        Route("/api/group", station.decide_group, methods=["POST"]),
        Route("/api/stats", station.stats, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(_SecurityHeaders),
        Middleware(
            SessionMiddleware,
            secret_key=redis.get(SECRET_KEY).decode(),
            session_cookie="digits_review",
            max_age=SESSION_HOURS * 3600,
            same_site="strict",
            https_only=settings.review_https,
        ),
    ]
    return Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: _as_json})


class Station:
    """The handlers, over one review queue."""

    def __init__(self, redis: Redis, queue: ReviewQueue, settings: Settings) -> None:
        self.redis = redis
        self.queue = queue
        self.results = Path(settings.results).resolve()
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.throttle = LoginThrottle(redis)

    def page(self, template: str):
        async def show(request: Request) -> Response:
            user = await run_in_threadpool(self._user, request)
            if user is None:
                return self.templates.TemplateResponse(request, "login.html", {}, status_code=401)
            return self.templates.TemplateResponse(request, template, {"user": user, "csrf": request.session["csrf"]})

        return show

    async def login(self, request: Request) -> Response:
        body = await _json(request)
        name, password = str(body.get("username", "")), str(body.get("password", ""))
        accepted = await run_in_threadpool(self.throttle.attempt, request.client.host if request.client else "",
                                           lambda: reviewers.check(self.redis, name, password))  # fmt: skip
        if not accepted:
            return JSONResponse({"error": "wrong name or password"}, status_code=401)
        request.session.clear()
        request.session.update(user=name, csrf=secrets.token_urlsafe(32))
        return JSONResponse({"csrf": request.session["csrf"], "user": name})

    async def logout(self, request: Request) -> Response:
        await self._changing(request)
        request.session.clear()
        return JSONResponse({})

    async def next_item(self, request: Request) -> Response:
        user = await self._reviewer(request)
        kind = request.query_params.get("kind")
        if kind not in (None, REVIEW_KIND, AUDIT_KIND):
            raise HTTPException(400, "kind is review or audit")
        item = await run_in_threadpool(self.queue.next, user, kind)
        if item is None:
            return Response(status_code=204)
        left = await run_in_threadpool(self.queue.left)
        return JSONResponse(_shown(item) | {"left": left})

    async def decide(self, request: Request) -> Response:
        user = await self._changing(request)
        item = request.path_params["item"]
        body = await _json(request)
        if body.get("unreadable") is True:
            digits = None
        else:
            digits = str(body.get("digits", ""))
            if not digits.isascii() or not digits.isdigit():
                raise HTTPException(400, 'digits are 0-9 only; send {"unreadable": true} for none')
        decision = await self._on_item(self.queue.decide, item, user, digits)
        return JSONResponse({"id": item, "verdict": decision.verdict, "digits": decision.digits})

    async def skip(self, request: Request) -> Response:
        user = await self._changing(request)
        await self._on_item(self.queue.skip, request.path_params["item"], user)
        return JSONResponse({})

    async def undo(self, request: Request) -> Response:
        user = await self._changing(request)
        item = await self._on_item(self.queue.undo, request.path_params["item"], user)
        return JSONResponse(_shown(item))

    def image(self, which: str):
        async def send(request: Request) -> Response:
            await self._reviewer(request)
            try:
                item = await run_in_threadpool(self.queue.item, request.path_params["item"])
            except UnknownItem:
                raise HTTPException(404, "no such item") from None
            path = (self.results / getattr(item, which)).resolve()
            # The path comes from Redis, not from the request; still, only PNGs of the results folder are sent.
            if not path.is_relative_to(self.results) or path.suffix != ".png" or not path.is_file():
                raise HTTPException(404, "the item's picture is missing")
            return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-store"})

        return send

    async def group(self, request: Request) -> Response:
        """Waiting single digits that the machine read as the same digit, leased to the reviewer together."""
        user = await self._reviewer(request)
        items = await run_in_threadpool(self._lease_group, user)
        return JSONResponse({"digit": items[0].digits if items else None, "items": [_shown(i) for i in items]})

    async def decide_group(self, request: Request) -> Response:
        """Confirm the group's items the reviewer left alone; give the ones marked wrong back, to be keyed alone."""
        user = await self._changing(request)
        body = await _json(request)
        confirmed, wrong = list(body.get("confirm", [])), list(body.get("wrong", []))
        for item in confirmed:
            found = await run_in_threadpool(self.queue.item, str(item))
            await self._on_item(self.queue.decide, str(item), user, found.digits)
        for item in wrong:
            await self._on_item(self.queue.release, str(item), user)
        return JSONResponse({"confirmed": len(confirmed), "returned": len(wrong)})

    async def stats(self, request: Request) -> Response:
        await self._reviewer(request)
        return JSONResponse(await run_in_threadpool(self.queue.stats))

    def _lease_group(self, user: str) -> list[ReviewItem]:
        held = [item for item in self.queue.held_by(user, REVIEW_KIND) if len(item.digits) == 1]
        if held:
            return [item for item in held if item.digits == held[0].digits][:GROUP_SIZE]
        singles = [item for item in self.queue.waiting(REVIEW_KIND, GROUP_LOOKAHEAD) if len(item.digits) == 1]
        if not singles:
            return []
        digit = max({item.digits for item in singles}, key=lambda d: sum(item.digits == d for item in singles))
        chosen = [item for item in singles if item.digits == digit][:GROUP_SIZE]
        return [leased for item in chosen if (leased := self.queue.lease(item.id, user))]

    def _user(self, request: Request) -> str | None:
        user = request.session.get("user")
        if user and reviewers.exists(self.redis, user):
            return user
        return None

    async def _reviewer(self, request: Request) -> str:
        user = await run_in_threadpool(self._user, request)
        if user is None:
            raise HTTPException(401, "log in first: POST /api/login")
        return user

    async def _changing(self, request: Request) -> str:
        """The reviewer of a request that changes something, once its CSRF token is checked."""
        user = await self._reviewer(request)
        token = request.headers.get("x-csrf-token", "")
        if not secrets.compare_digest(token, request.session.get("csrf", "")):
            raise HTTPException(403, "missing or wrong X-CSRF-Token: send the token /api/login returned")
        return user

    async def _on_item(self, action, item: str, *args: object):
        try:
            return await run_in_threadpool(action, item, *args)
        except UnknownItem:
            raise HTTPException(404, "no such item") from None
        except Conflict as conflict:
            raise HTTPException(409, str(conflict)) from None


def _shown(item: ReviewItem) -> dict:
    """What a reviewer is sent of an item: an audit item comes blind, without the machine's reading."""
    blind = item.kind == AUDIT_KIND
    return {
        "id": item.id,
        "kind": item.kind,
        "source": item.source,
        "page": item.page,
        "field": item.field,
        "digits": None if blind else item.digits,
        "confidences": None if blind else item.confidences,
        "image": f"/api/items/{item.id}/image",
        "page_image": f"/api/items/{item.id}/page",
    }


async def _as_json(request: Request, problem: HTTPException) -> Response:
    """An error as JSON, ``{"error": what to do}``, with its status."""
    return JSONResponse({"error": problem.detail}, status_code=problem.status_code)


async def _json(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "send a JSON object") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "send a JSON object")
    return body


class _SecurityHeaders:
    """Adds ``HEADERS`` to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message.setdefault("headers", [])
                message["headers"] += [
                    (name.lower().encode(), value.encode())
                    for name, value in HEADERS.items()
                    if name.lower().encode() not in present
                ]
            await send(message)

        await self.app(scope, receive, with_headers)
