"""`roadmesh web ...`: database migrations and the web server (map, API, admin)."""

from __future__ import annotations

import argparse

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


def _migrate(args: argparse.Namespace) -> int:
    setup_django()
    migrate(verbosity=1)
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
