"""Containers on a machine without a registry: podman as a docker-compatible service.

* :mod:`infrastructure.containers.podman` writes podman's configuration into a folder of
  ours, starts ``podman system service`` on a unix socket there and stops it by PID;
  ``DOCKER_HOST=unix://<folder>/podman.sock`` then lets cwltool use its docker mode.
* :mod:`infrastructure.containers.images` builds the images the tests and development
  runs need from the host's Debian files (``podman import``), so nothing is pulled.

``python -m infrastructure.containers up|down|env`` does the same for development.
"""
