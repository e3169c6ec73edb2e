"""The ``oapip`` command: run the embedded stack, or one of its parts."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from core.settings import get_settings

__all__ = ["main"]


def _up(args: argparse.Namespace) -> int:
    from core.tenancy import mode_problem
    from stack.local import Stack
    from stack.prefect_auth import AUTH_FILE

    settings = get_settings()
    if problem := mode_problem(settings):
        print(f"oapip: will not start: {problem}", file=sys.stderr)
        return 1
    if args.prefect_replicas or args.fast_workers:
        stack_settings = settings.stack.model_copy(
            update={
                "prefect_replicas": args.prefect_replicas or settings.stack.prefect_replicas,
                "fast_workers": args.fast_workers or settings.stack.fast_workers,
            }
        )
        settings = settings.model_copy(update={"stack": stack_settings})
    stack = Stack(settings, worker=args.worker)
    stack.stop()  # whatever an earlier start left behind
    try:
        stack.start()
    except Exception as exc:
        stack.stop()
        print(f"oapip: could not start: {exc}; see {settings.home / 'logs'}", file=sys.stderr)
        return 1
    gateway = f"http://{settings.stack.host}:{settings.stack.port}"
    print(
        "\nOGC API - Processes engine is up.\n"
        f"  OGC API      {gateway}/ogc-api/   (per user: {gateway}/<user>/ogc-api/)\n"
        f"  Swagger UI   {gateway}/swagger-ui/oapip/\n"
        f"  Prefect UI   {settings.ui_url}/   (credentials: {settings.home / AUTH_FILE})\n"
        f"  logs         {settings.home / 'logs'}\n"
        + (
            "Press Ctrl-C to stop.\n"
            if not args.detach
            else "Stop it with: oapip down   (./dev down from a checkout)\n"
        ),
        flush=True,
    )
    if args.detach:
        return 0
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(1)
        dead = [n for n, p in stack.processes.items() if p.poll() is not None]
        print(f"oapip: {', '.join(dead)} stopped; shutting down", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


def _down(args: argparse.Namespace) -> int:
    from stack.local import Stack

    Stack(get_settings()).stop()
    return 0


def _setup(args: argparse.Namespace) -> int:
    from core.naming import FAST_POOL_TYPE
    from stack.setup import setup

    setup(get_settings(), pool_type=FAST_POOL_TYPE if args.worker == "fast" else args.worker)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oapip", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Prefect server, worker and gateway on this machine")
    up.add_argument(
        "--worker",
        choices=["fast", "process"],
        default="fast",
        help="the engine's fast worker (default) or Prefect's stock process worker",
    )
    up.add_argument(
        "--prefect-replicas",
        type=int,
        help="Prefect API processes (OAPIP_PREFECT_REPLICAS); above 1 needs PostgreSQL "
        "(OAPIP_DATABASE_URL) and Redis (OAPIP_REDIS_URL)",
    )
    up.add_argument(
        "--fast-workers", type=int, help="fast workers on the one pool (OAPIP_FAST_WORKERS)"
    )
    up.add_argument("--detach", action="store_true", help="return once everything is up")
    up.set_defaults(func=_up)
    down = sub.add_parser("down", help="stop what `oapip up --detach` started")
    down.set_defaults(func=_down)
    prepare = sub.add_parser("setup", help="register blocks, work pool and flow with Prefect")
    prepare.add_argument(
        "--worker", default="fast", help="work pool type: fast, process, kubernetes"
    )
    prepare.set_defaults(func=_setup)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
