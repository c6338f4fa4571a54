"""`roadmesh web ...`: database migrations and the web server (map, API, admin)."""

from __future__ import annotations

import argparse
import sys

from webapp.django_setup import migrate, setup_django


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("web", help="the web app: migrate, serve, create users")
    cmds = parser.add_subparsers(dest="web_command", metavar="ACTION", required=True)
    mig = cmds.add_parser("migrate", help="create or update the database schema")
    mig.set_defaults(func=_migrate)
    serve = cmds.add_parser("serve", help="serve map, API and admin with waitress")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--threads", type=int, default=8)
    serve.set_defaults(func=_serve)
    key = cmds.add_parser("apikey", help="issue an API key for a user (printed once)")
    key.add_argument("--user", required=True, help="the key's owner (username)")
    key.add_argument("--create", action="store_true", help="create the user first if missing")
    key.add_argument(
        "--role", default="consumer", choices=("consumer", "operator"), help="role of a new user"
    )
    key.add_argument("--name", default="", help="what the key is for")
    key.set_defaults(func=_apikey)
    export = cmds.add_parser(
        "export-yolo", help="settled review labels as a YOLO dataset (images, labels, data.yaml)"
    )
    export.add_argument("out", help="an empty or new folder")
    export.set_defaults(func=_export_yolo)


def _migrate(args: argparse.Namespace) -> int:
    setup_django()
    migrate(verbosity=1)
    return 0


def _apikey(args: argparse.Namespace) -> int:
    setup_django()
    from webapp.accounts.models import User
    from webapp.accounts.views import join
    from webapp.api.models import ApiKey

    user = User.objects.filter(username=args.user).first()
    if user is None:
        if not args.create:
            print(f"no user {args.user!r} (add --create)", file=sys.stderr)
            return 2
        user = User.objects.create_user(args.user)
        user.set_unusable_password()
        user.save()
        join(user, args.role)
    _key, raw = ApiKey.issue(user, args.name)
    print(raw)
    return 0


def _export_yolo(args: argparse.Namespace) -> int:
    setup_django()
    from pathlib import Path

    from webapp.review.export import ExportError, export_yolo

    try:
        summary = export_yolo(Path(args.out))
    except ExportError as exc:
        print(f"export-yolo: {exc}", file=sys.stderr)
        return 2
    print(
        f"exported {summary.images} images with {summary.boxes} boxes in"
        f" {len(summary.classes)} classes to {args.out}"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    setup_django()
    import waitress

    from webapp.wsgi import application

    print(f"serving http://{args.host}:{args.port}/", flush=True)
    waitress.serve(
        application, host=args.host, port=args.port, threads=args.threads, ident="roadmesh"
    )
    return 0
