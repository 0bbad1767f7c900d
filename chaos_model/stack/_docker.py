"""Docker access for the compose backend: the engine client, the Compose CLI, the built images.

Every failure a user can fix is a :class:`~chaos_model.errors.StackError` with one line that says
what to do (install or start Docker, build the images).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaos_model.errors import StackError

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.test.yml"
#: written by scripts/build-images; ``CHAOS_IMAGES_ENV`` names another one
IMAGES_ENV = Path(os.environ.get("CHAOS_IMAGES_ENV") or ROOT / "docker" / "images.env")
TEST_ENVIRONMENT_LABEL = "com.chaos-model.test-environment"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
#: the image variables compose.test.yml reads, and the service each one is for
IMAGE_VARIABLES = {
    "CHAOS_POSTGRES_IMAGE": "postgres",
    "CHAOS_NATS_IMAGE": "nats",
    "CHAOS_NGINX_IMAGE": "nginx",
    "CHAOS_APP_IMAGE": "api, worker and llm",
}
DOCKER_HINT = "install and start it with `scripts/docker-engine` (as root)"
BUILD_HINT = "build the images with `scripts/build-images`"


def docker_client() -> Any:
    """A docker SDK client that answers, or a one-line StackError saying what is missing."""
    try:
        # by name: the repository's own docker/ folder (Dockerfiles) would shadow it for mypy
        docker = importlib.import_module("docker")
    except ImportError as error:
        raise StackError(
            "the compose backend needs the docker SDK: pip install 'chaos-model[compose]'"
        ) from error
    try:
        client = docker.from_env(version="auto", timeout=30)
        client.ping()
    except Exception as error:  # noqa: BLE001 - any failure here means "no usable engine"
        raise StackError(f"Docker is not available ({_first_line(error)}); {DOCKER_HINT}") from None
    return client


def docker_available() -> bool:
    try:
        docker_client().close()
    except StackError:
        return False
    return True


def compose_command() -> list[str]:
    """``docker compose`` (v2) when present, else ``docker-compose`` (v1); ``CHAOS_COMPOSE``
    overrides (e.g. ``CHAOS_COMPOSE=docker-compose``)."""
    override = os.environ.get("CHAOS_COMPOSE", "").split()
    if override:
        return override
    if shutil.which("docker") is not None:
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False, timeout=30
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose") is not None:
        return ["docker-compose"]
    raise StackError(f"neither `docker compose` nor `docker-compose` is installed; {DOCKER_HINT}")


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def image_environment(client: Any, env_file: Path = IMAGES_ENV) -> dict[str, str]:
    """The image variables for compose, checked: each image must exist locally."""
    if not env_file.exists():
        raise StackError(f"no images for the compose stack ({env_file} is missing); {BUILD_HINT}")
    values = read_env_file(env_file)
    for variable, purpose in IMAGE_VARIABLES.items():
        image = values.get(variable) or os.environ.get(variable)
        if not image:
            raise StackError(f"{env_file} names no {variable} (for {purpose}); {BUILD_HINT}")
        try:
            client.images.get(image)
        except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound, or the engine is gone
            raise StackError(f"image {image} (for {purpose}) is not built; {BUILD_HINT}") from None
    check_app_image(client, values.get("CHAOS_APP_IMAGE") or os.environ["CHAOS_APP_IMAGE"])
    return values


SOURCE_LABEL = "com.chaos-model.source"


def source_digest(root: Path = ROOT) -> str:
    """The digest of the code the app image carries; scripts/build-images computes the same."""
    files = sorted(
        str(path.relative_to(root))
        for package in ("chaos_model", "pipeline_app")
        for path in (root / package).rglob("*")
        if path.suffix in (".py", ".sql") and "__pycache__" not in path.parts
    )
    lines = [
        f"{name}\0{hashlib.sha256((root / name).read_bytes()).hexdigest()}\n"
        for name in ["pyproject.toml", *files]
    ]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def check_app_image(client: Any, image: str) -> None:
    """Refuse an app image built from other code than this tree's (it would test stale code)."""
    built = (client.images.get(image).labels or {}).get(SOURCE_LABEL)
    if built is not None and built != source_digest():
        raise StackError(
            f"image {image} was built from other code than this tree's; {BUILD_HINT} again"
        )


def project_containers(client: Any, project: str, service: str | None = None) -> list[Any]:
    labels = [f"{PROJECT_LABEL}={project}"]
    if service is not None:
        labels.append(f"{SERVICE_LABEL}={service}")
    return list(client.containers.list(all=True, filters={"label": labels}))


def run_compose(
    command: list[str], args: list[str], env: Mapping[str, str], *, timeout: float
) -> None:
    """Run one compose command; a failure is a StackError with the end of its output."""
    try:
        done = subprocess.run(
            [*command, *args],
            env=dict(env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise StackError(f"`{' '.join(command + args[:6])}` took over {timeout:.0f}s") from error
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise StackError(f"`{' '.join(command + args[:6])}` failed:\n{tail}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
