"""``python -m infrastructure.containers up|down|env|build`` for development.

up [FOLDER]     start podman's service in FOLDER (default ~/.oapip/podman) and build
                missing images; prints the variables to export
env [FOLDER]    print the variables (`eval "$(python -m infrastructure.containers env)"`)
build [FOLDER]  rebuild every image
down [FOLDER]   stop the service by its PID file
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.exceptions import ContainerEngineError
from infrastructure.containers.images import build_images
from infrastructure.containers.podman import PodmanService


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infrastructure.containers")
    parser.add_argument("command", choices=["up", "down", "env", "build"])
    parser.add_argument("folder", nargs="?", type=Path, default=Path.home() / ".oapip" / "podman")
    args = parser.parse_args(argv)
    service = PodmanService(args.folder.resolve())
    try:
        if args.command in ("up", "build"):
            service.start()
            for image, seconds in build_images(service, rebuild=args.command == "build").items():
                print(f"# built {image} in {seconds:.1f} s", file=sys.stderr)
        elif args.command == "down":
            service.stop()
            return 0
    except ContainerEngineError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    for name, value in service.environment().items():
        print(f"export {name}={value}")
    print("export OAPIP_CONTAINER_ENGINE=docker")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
