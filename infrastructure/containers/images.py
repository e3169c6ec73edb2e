"""Container images built from the host's Debian files: nothing is pulled.

No registry is reachable from the build machines, so every image the tests run is
assembled here. A base root filesystem is copied from files Debian installed on the
host (``busybox-static`` for a shell, Python 3.11 with Pillow), together with every
shared library those files link to, and imported with ``podman import``; each tool image
adds its program in a second layer (``podman build --pull=never``).

Images (names as the application packages' ``dockerPull`` lines spell them):

* ``eoepca/convert:latest`` — ``convert.sh FN --url URL SIZE`` resizes an image (Pillow)
  and writes what the real image writes: ``<stem>-resize.<ext>``, its STAC item
  ``<stem>-resize.json`` and ``catalog.json``;
* ``ghcr.io/terradue/ogc-eo-application-package-hands-on/{crop,norm_diff,otsu,stac}:1.5.0``
  — stand-ins of the water-bodies tools on tiny GeoTIFFs (``python -m app``).
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from core.exceptions import ContainerEngineError
from infrastructure.containers.podman import PodmanService

__all__ = ["BASE_IMAGE", "IMAGES", "build_images", "build_rootfs", "missing_images"]

BASE_IMAGE = "localhost/oapip/tool-base:latest"
TOOLS = Path(__file__).parent / "tools"
WATER_BODIES = "ghcr.io/terradue/ogc-eo-application-package-hands-on"
# Image name -> Containerfile lines after FROM; the build context is ``tools/``.
IMAGES: dict[str, str] = {
    "eoepca/convert:latest": (
        "COPY convert/convert.sh /usr/local/bin/convert.sh\n"
        "COPY convert/convert.py /opt/convert/convert.py\n"
    ),
    **{
        f"{WATER_BODIES}/{tool}:1.5.0": (
            f"COPY common/geotiff.py /app/geotiff.py\nCOPY {tool}/app /app/app\n"
        )
        for tool in ("crop", "norm_diff", "otsu", "stac")
    },
}
# Debian packages whose files make the base image (their libraries come along by ldd).
BASE_PACKAGES = (
    "busybox-static",
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "python3-pil",
)
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SKIP = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/lintian/", "/usr/share/bug/")


def _run(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise ContainerEngineError(f"{command[0]} failed: {detail.strip()[-500:]}") from exc


def _package_files(packages: Iterable[str]) -> list[Path]:
    """Regular files and symlinks Debian installed for ``packages``."""
    listing = _run(["dpkg", "-L", *packages])
    files = []
    for line in listing.splitlines():
        path = Path(line)
        if line.startswith(_SKIP) or not path.is_absolute():
            continue
        if path.is_symlink() or path.is_file():
            files.append(path)
    return files


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


def _shared_libraries(files: Iterable[Path]) -> set[Path]:
    """Every library (and the loader) that the ELF files in ``files`` need, by ldd."""
    elves = [str(path) for path in files if not path.is_symlink() and _is_elf(path)]
    libraries: set[Path] = set()
    for start in range(0, len(elves), 200):
        # ldd exits non-zero when one of its files is static (busybox); read what it says.
        done = subprocess.run(
            ["ldd", *elves[start : start + 200]], capture_output=True, text=True, check=False
        )
        for line in done.stdout.splitlines():
            words = line.split()
            if "=>" in words and len(words) >= 3 and words[2].startswith("/"):
                libraries.add(Path(words[2]))
            elif words and words[0].startswith("/") and "(0x" in line:
                libraries.add(Path(words[0]))
    return libraries


def _copy_into(root: Path, path: Path) -> None:
    """Copy ``path`` to the same place under ``root``; a symlink stays a symlink."""
    target = root / path.relative_to("/")
    if target.exists() or target.is_symlink():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        target.symlink_to(path.readlink())
        resolved = path.resolve()
        if resolved.exists():
            _copy_into(root, resolved)
    else:
        shutil.copy2(path, target)


def build_rootfs(root: Path) -> None:
    """Assemble the base root filesystem in ``root`` (an empty or missing folder).

    Raises:
        ContainerEngineError: a package of :data:`BASE_PACKAGES` is not installed.
    """
    root.mkdir(parents=True, exist_ok=True)
    # Debian 12 merges /usr: /bin, /lib, /lib64 and /sbin are links into it.
    for name in ("bin", "lib", "lib64", "sbin"):
        (root / "usr" / name).mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(f"usr/{name}")
    files = _package_files(BASE_PACKAGES)
    for path in [*files, *_shared_libraries(files)]:
        _copy_into(root, path)
    usr_bin = root / "usr" / "bin"
    for name in ("python3", "python"):  # the tools run `python -m app`
        if not (usr_bin / name).exists():
            (usr_bin / name).symlink_to("python3.11")
    applets = _run([str(root / "bin" / "busybox"), "--list"]).split()
    for applet in applets:
        if not (usr_bin / applet).exists():
            (usr_bin / applet).symlink_to("busybox")
    for name in ("tmp", "var/tmp", "root", "proc", "sys", "dev", "etc"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")


def missing_images(service: PodmanService, names: Iterable[str] = IMAGES) -> list[str]:
    """The images of ``names`` that the service's storage does not hold."""
    present = set(service.podman("images", "--format", "{{.Repository}}:{{.Tag}}").split())
    return [name for name in names if _qualified(name) not in present]


def _qualified(name: str) -> str:
    """The name podman lists an image under (a bare name lives under ``localhost/``)."""
    first = name.split("/", 1)[0]
    return name if "." in first or ":" in first or first == "localhost" else f"localhost/{name}"


def build_images(service: PodmanService, *, rebuild: bool = False) -> dict[str, float]:
    """Build the base and every image of :data:`IMAGES` that is missing (all: ``rebuild``).

    Returns seconds spent per image built (the base as ``BASE_IMAGE``).
    """
    timings: dict[str, float] = {}
    wanted = list(IMAGES) if rebuild else missing_images(service)
    if not wanted:
        return timings
    with tempfile.TemporaryDirectory(prefix="oapip-images-") as scratch:
        if rebuild or missing_images(service, [BASE_IMAGE]):
            started = time.monotonic()
            rootfs, tarball = Path(scratch) / "rootfs", Path(scratch) / "rootfs.tar"
            build_rootfs(rootfs)
            with tarfile.open(tarball, "w") as archive:
                archive.add(rootfs, arcname=".")
            service.podman(
                "import",
                "--change",
                f"ENV PATH={_PATH}",
                "--change",
                "CMD /bin/sh",
                str(tarball),
                BASE_IMAGE,
            )
            timings[BASE_IMAGE] = time.monotonic() - started
        for name in wanted:
            started = time.monotonic()
            containerfile = Path(scratch) / f"{len(timings)}.Containerfile"
            containerfile.write_text(f"FROM {BASE_IMAGE}\n{IMAGES[name]}")
            service.podman(
                "build", "--pull=never", "--quiet", "-f", str(containerfile), "-t", name, str(TOOLS)
            )
            timings[name] = time.monotonic() - started
    return timings
