"""The one place that knows the stack's container images: which to run, and how to get them.

Two sets behind one switch, the environment variable ``HARNESS_IMAGES``:

- ``upstream``: the pinned official images (pulled; an error if they cannot be);
- ``local``: built here from Debian bookworm packages on a base made by ``mmdebstrap``,
  so that no registry is needed;
- ``auto`` (default), per image: the upstream image if it is present or can be pulled,
  else the local one.

The app is built in both sets from ``service/Dockerfile``; its base decides its flavour.
Grafana, Loki, Promtail and Jaeger have no Debian package: they are upstream only, and
unavailable where the local set is chosen or the upstream image cannot be pulled.
Local images are tagged by a hash of their inputs, so an unchanged image is never rebuilt.

``python -m harness images [name ...]`` ensures images and prints ``name ref flavour``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import docker
import docker.errors
import requests.exceptions

from harness.config import ROOT

RECIPES = Path(__file__).resolve().parent / "recipes"

#: Tag prefix of every image built here (`docker images 'shortener-local/*'`).
LOCAL_REPO = "shortener-local"

#: The upstream base of the app image.
UPSTREAM_BASE = "debian:bookworm-slim"

#: How the local base is made; its hash is the base's tag.
BASE_RECIPE = ("mmdebstrap", "--variant=minbase", "--quiet", "bookworm", "-")

#: Files that are never build inputs (caches, and what the host prepares into the context).
IGNORED = ("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", "*.egg-info",
           "node_modules", "wheels")

MODES = ("auto", "upstream", "local")


class ImageError(RuntimeError):
    """An image could not be pulled or built."""


class ImageUnavailable(ImageError):
    """The image set in use cannot provide this image at all (an upstream-only image without a registry)."""


@dataclass(frozen=True)
class Image:
    ref: str       # tag to run, e.g. "prom/prometheus:v2.42.0" or "shortener-local/prometheus:3f2a9c1b7d0e"
    flavour: str   # "upstream" or "local"


def _npm_ci(context: Path) -> None:
    """Install MailDev into the build context from its lock file (npm cannot run in the build)."""
    _run(["npm", "ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"], context)


def _pip_wheel(context: Path) -> None:
    """Build the app's wheels into the build context (pip cannot reach PyPI in the build)."""
    # requirements.txt pins, unconditionally, what the image's older Python 3.11 needs too.
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "-w", "wheels", "-r", "requirements.txt"], context)


@dataclass(frozen=True)
class Spec:
    """How to get one service's image."""

    name: str
    upstream: str | None      # pinned official image; None: built in both sets (on UPSTREAM_BASE)
    recipe: Path | None       # folder with the Dockerfile, all its files build inputs; None: upstream only
    prepare: Callable[[Path], None] | None = None   # adds host-built inputs to the context


SPECS = {
    spec.name: spec
    for spec in (
        Spec("postgres", "postgres:15-bookworm", RECIPES / "postgres"),
        Spec("redis", "redis:7.0.15-bookworm", RECIPES / "redis"),
        Spec("app", None, ROOT / "service", prepare=_pip_wheel),
        Spec("prometheus", "prom/prometheus:v2.42.0", RECIPES / "prometheus"),
        Spec("alertmanager", "prom/alertmanager:v0.25.0", RECIPES / "alertmanager"),
        Spec("frontdoor", "nginx:1.22.1", RECIPES / "frontdoor"),
        Spec("frontdoor-exporter", "nginx/nginx-prometheus-exporter:0.11.0", RECIPES / "frontdoor-exporter"),
        Spec("probe", "prom/blackbox-exporter:v0.23.0", RECIPES / "probe"),
        Spec("frontdoor-log", None, RECIPES / "frontdoor-log"),
        Spec("relay", None, RECIPES / "relay"),
        Spec("mailsink", "mailhog/mailhog:v1.0.1", RECIPES / "mailsink", prepare=_npm_ci),
        Spec("redis-exporter", "oliver006/redis_exporter:v1.45.0", RECIPES / "redis-exporter"),
        Spec("postgres-exporter", "quay.io/prometheuscommunity/postgres-exporter:v0.11.1",
             RECIPES / "postgres-exporter"),
        Spec("grafana", "grafana/grafana:11.3.0", None),
        Spec("loki", "grafana/loki:3.2.1", None),
        Spec("promtail", "grafana/promtail:3.2.1", None),
        Spec("jaeger", "jaegertracing/all-in-one:1.62.0", None),
    )
}
ALL = tuple(SPECS)

_cache: dict[tuple[str, str], Image] = {}
_lock = threading.RLock()
_client: docker.DockerClient | None = None


def ensure(name: str) -> Image:
    """Return a runnable image for a service, pulling or building it as needed (cached per process)."""
    if name not in SPECS:
        raise ValueError(f"unknown image {name!r}; known: {', '.join(ALL)}")
    mode = _mode()
    with _lock:
        if (mode, name) not in _cache:
            _cache[mode, name] = _resolve(SPECS[name], mode)
        return _cache[mode, name]


def ensure_available(names: Iterable[str]) -> tuple[dict[str, Image], dict[str, str]]:
    """Ensure the images the image set can provide; return them, and why each other one is unavailable."""
    found, unavailable = {}, {}
    for name in names:
        try:
            found[name] = ensure(name)
        except ImageUnavailable as why:
            unavailable[name] = str(why)
    return found, unavailable


def _mode() -> str:
    mode = os.environ.get("HARNESS_IMAGES", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"HARNESS_IMAGES={mode!r}: expected one of {', '.join(MODES)}")
    return mode


def _resolve(spec: Spec, mode: str) -> Image:
    if spec.recipe is None:
        return _choose(spec.upstream, mode, lambda: _upstream_only(mode))
    if spec.upstream is None:
        # Built in both sets: the set decides the base, the base decides the flavour.
        base = _choose(UPSTREAM_BASE, mode, _local_base)
        return Image(_build(spec, base.ref), base.flavour)
    return _choose(spec.upstream, mode, lambda: Image(_build(spec, _local_base().ref), "local"))


def _choose(upstream: str, mode: str, build_local: Callable[[], Image]) -> Image:
    """The upstream image if present or pullable (unless mode is local), else build_local()."""
    if mode != "local":
        if _present(upstream):
            return Image(upstream, "upstream")
        failure = _pull(upstream)
        if failure is None:
            return Image(upstream, "upstream")
        if mode == "upstream":
            raise ImageError(
                f"HARNESS_IMAGES=upstream: {upstream} is not present and pulling it failed: "
                f"{failure}. Without a registry, set HARNESS_IMAGES=local (or auto) to build "
                f"the images from Debian packages.")
        _say(f"cannot pull {upstream} ({failure}); falling back to the local image set")
    return build_local()


def _upstream_only(mode: str) -> Image:
    """What the local image set answers for an image it has no recipe for."""
    if mode == "local":
        raise ImageUnavailable("HARNESS_IMAGES=local, and the local image set has no Debian package for them "
                               "(on a machine with registry access, HARNESS_IMAGES=auto or upstream pulls them)")
    raise ImageUnavailable("the local image set has no Debian package for them and no registry is reachable "
                           "(on a machine with registry access, HARNESS_IMAGES=auto or upstream pulls them)")


def _local_base() -> Image:
    """The Debian bookworm minbase image, made by mmdebstrap and `docker import`."""
    with _lock:
        if ("local", "_base") not in _cache:
            ref = f"{LOCAL_REPO}/base:{_digest([' '.join(BASE_RECIPE).encode()])}"
            if not _present(ref):
                _import_base(ref)
            _cache["local", "_base"] = Image(ref, "local")
        return _cache["local", "_base"]


def _import_base(ref: str) -> None:
    if shutil.which("mmdebstrap") is None:
        if os.geteuid() != 0:
            raise ImageError("the local images need mmdebstrap to make their base: "
                             "apt-get install mmdebstrap (as root), or use HARNESS_IMAGES=upstream")
        _say("installing mmdebstrap")
        _run(["apt-get", "update", "-qq"], ROOT)
        _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "mmdebstrap"], ROOT)
    started = _say(f"building local base ({ref}) with {' '.join(BASE_RECIPE)}")
    repository, tag = ref.rsplit(":", 1)
    with tempfile.TemporaryFile() as errors:
        debootstrap = subprocess.Popen(BASE_RECIPE, stdout=subprocess.PIPE, stderr=errors)
        try:
            _docker().api.import_image_from_stream(debootstrap.stdout, repository, tag)
        finally:
            debootstrap.stdout.close()
            returncode = debootstrap.wait()
        if returncode != 0:
            errors.seek(0)
            _remove(ref)  # a truncated tarball may have been imported
            raise ImageError(f"{' '.join(BASE_RECIPE)} failed ({returncode}):\n"
                             f"{_tail(errors.read().decode(errors='replace'))}")
    _say(f"built {ref} in {time.monotonic() - started:.0f} s")


def _build(spec: Spec, base: str) -> str:
    """Build spec's image on base unless an image with the same inputs exists; return its tag."""
    if not (spec.recipe / "Dockerfile").is_file():
        raise ImageError(f"cannot build {spec.name}: {spec.recipe / 'Dockerfile'} does not exist")
    base_id = _docker().images.get(base).id
    ref = f"{LOCAL_REPO}/{spec.name}:{_digest([base_id.encode(), *_inputs(spec.recipe)])}"
    if _present(ref):
        return ref
    started = _say(f"building {spec.name} ({ref}) on {base}")
    with tempfile.TemporaryDirectory(prefix=f"image-{spec.name}-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(spec.recipe, context, ignore=shutil.ignore_patterns(*IGNORED))
        if spec.prepare:
            spec.prepare(context)
        try:
            _docker().images.build(
                path=str(context), tag=ref, buildargs={"BASE": base}, network_mode="host",
                pull=False, rm=True, forcerm=True, labels={"shortener.image": spec.name})
        except docker.errors.BuildError as error:
            log = "".join(chunk.get("stream", "") for chunk in error.build_log)
            raise ImageError(f"building {spec.name} ({ref}) failed: {error.msg}\n{_tail(log)}") from None
    _say(f"built {ref} in {time.monotonic() - started:.0f} s")
    return ref


def _inputs(folder: Path) -> list[bytes]:
    """Every file of a recipe folder (path, executable bit, content), in a stable order."""
    ignore = shutil.ignore_patterns(*IGNORED)
    parts = []
    for directory, subdirs, files in os.walk(folder):
        skipped = ignore(directory, subdirs + files)
        subdirs[:] = sorted(d for d in subdirs if d not in skipped)
        for name in sorted(f for f in files if f not in skipped):
            path = Path(directory, name)
            executable = os.access(path, os.X_OK)
            parts.append(f"{path.relative_to(folder).as_posix()}:{executable}:".encode())
            parts.append(path.read_bytes())
    return parts


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:12]


def _docker() -> docker.DockerClient:
    global _client
    if _client is None:
        # Long timeout: a build step may print nothing for minutes.
        _client = docker.from_env(timeout=900)
    return _client


def _present(ref: str) -> bool:
    try:
        _docker().images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def _pull(ref: str) -> str | None:
    """Pull ref; return None on success, else why it failed (without a registry: within a second)."""
    _say(f"pulling {ref}")
    try:
        _docker().images.pull(ref)
        return None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        reason = getattr(error, "explanation", None) or str(error)
        return str(reason).strip().splitlines()[0][:300]


def _remove(ref: str) -> None:
    try:
        _docker().images.remove(ref, force=True)
    except docker.errors.ImageNotFound:
        pass


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if done.returncode != 0:
        raise ImageError(f"{' '.join(command)} failed ({done.returncode}) in {cwd}:\n"
                         f"{_tail(done.stdout)}")


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _say(message: str) -> float:
    print(f"images: {message}", file=sys.stderr, flush=True)
    return time.monotonic()


def report(names: Iterable[str]) -> int:
    """Ensure these images (all by default) and print ``name ref flavour`` for each; 1 when one cannot be had."""
    names = tuple(names) or ALL
    try:
        images, unavailable = ensure_available(names)
    except (ImageError, ValueError) as error:
        print(f"images: {error}", file=sys.stderr)
        return 1
    name_width = max(map(len, names))
    ref_width = max((len(image.ref) for image in images.values()), default=0)
    for name, image in images.items():
        print(f"{name:<{name_width}}  {image.ref:<{ref_width}}  {image.flavour}", flush=True)
    for name, why in unavailable.items():
        print(f"{name:<{name_width}}  {'-':<{ref_width}}  unavailable: {why}", flush=True)
    return 0
