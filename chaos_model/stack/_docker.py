"""Docker access for the compose backend: the engine client, the Compose CLI, the built images.

Every failure a user can fix is a :class:`~chaos_model.errors.StackError` with one line that says
what to do (install or start Docker, build the images).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from chaos_model.errors import StackError

if TYPE_CHECKING:
    from chaos_model.adapter import TargetSpec

#: names the images file instead of the adapter's ``[compose] images_env``
IMAGES_ENV_VARIABLE = "CHAOS_IMAGES_ENV"
TEST_ENVIRONMENT_LABEL = "com.chaos-model.test-environment"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
#: the digest of the code an image was built from (see :func:`source_digest`)
SOURCE_LABEL = "com.chaos-model.source"
DOCKER_HINT = "install and start it with `scripts/docker-engine` (as root)"
DOWN_SECONDS = 120.0
DOWN_ARGS = ("down", "-v", "--remove-orphans", "-t", "2")


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
    """The ``KEY=value`` lines of ``path`` (not its ``#`` comments)."""
    lines = (line.strip().partition("=") for line in path.read_text().splitlines())
    return {
        key.strip(): value.strip() for key, eq, value in lines if eq and not key.startswith("#")
    }


def images_env_path(target: TargetSpec) -> Path | None:
    """``$CHAOS_IMAGES_ENV``, else the adapter's ``[compose] images_env``; None when neither."""
    override = os.environ.get(IMAGES_ENV_VARIABLE)
    if override:
        return Path(override)
    assert target.compose is not None
    return target.root / target.compose.images_env if target.compose.images_env else None


def image_environment(client: Any, target: TargetSpec, env_file: Path | None) -> dict[str, str]:
    """The compose variables naming the images (from ``env_file``), checked: every image the
    adapter's ``[compose] images`` names must exist in the engine, and one labelled with the
    code it was built from must have been built from this tree's."""
    compose = target.compose
    assert compose is not None
    hint = "build the images the compose file needs"
    if compose.build:
        hint = f"build the images with `{compose.build}`"
    digest = ""
    values: dict[str, str] = {}
    if env_file is not None:
        if not env_file.exists():
            raise StackError(f"no images for the compose stack ({env_file} is missing); {hint}")
        values = read_env_file(env_file)
    for variable in compose.images:
        image = values.get(variable) or os.environ.get(variable)
        if not image:
            where = env_file if env_file is not None else "the environment"
            raise StackError(f"{where} names no {variable} (an image of the compose file); {hint}")
        values[variable] = image
        try:
            labels = client.images.get(image).labels or {}
        except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound, or the engine is gone
            raise StackError(f"image {image} ({variable}) is not built; {hint}") from None
        built = labels.get(SOURCE_LABEL)
        if built is None:
            continue
        digest = digest or source_digest(target.root, compose.source)
        if built != digest:
            raise StackError(
                f"image {image} was built from other code than this tree's; {hint} again"
            )
    return values


def source_files(root: Path, source: tuple[str, ...]) -> list[str]:
    """Every file of ``source`` (files, and folders' files but compiled Python), relative."""
    files: set[str] = set()
    for entry in source:
        path = root / entry
        if path.is_file():
            files.add(str(PurePosixPath(entry)))
            continue
        for found in path.rglob("*"):
            if found.is_file() and "__pycache__" not in found.parts and found.suffix != ".pyc":
                files.add(str(found.relative_to(root)))
    return sorted(files)


def source_digest(root: Path, source: tuple[str, ...]) -> str:
    """The digest of the code an image carries; scripts/build-images computes the same."""
    lines = [
        f"{name}\0{hashlib.sha256((root / name).read_bytes()).hexdigest()}\n"
        for name in source_files(root, source)
    ]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def project_containers(client: Any, project: str, service: str | None = None) -> list[Any]:
    labels = [f"{PROJECT_LABEL}={project}"]
    if service is not None:
        labels.append(f"{SERVICE_LABEL}={service}")
    return list(client.containers.list(all=True, filters={"label": labels}))


def labelled_test_environment(client: Any, project: str) -> bool:
    """Every container of ``project`` carries the test-environment label."""
    containers = project_containers(client, project)
    return bool(containers) and all(
        (c.labels or {}).get(TEST_ENVIRONMENT_LABEL) == "true" for c in containers
    )


def run_compose(
    command: Sequence[str], args: list[str], env: Mapping[str, str], *, cwd: Path, timeout: float
) -> None:
    """Run one compose command; a failure is a StackError with the end of its output."""
    line = " ".join([*command, *args[:6]])
    try:
        done = subprocess.run(
            [*command, *args],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise StackError(f"`{line}` took over {timeout:.0f}s") from error
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise StackError(f"`{line}` failed:\n{tail}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def bring_down(
    project: str, command: Sequence[str], env: Mapping[str, str], file: str, cwd: str
) -> None:
    """Unpause every container of ``project``, run ``compose down -v`` (compose file ``file``,
    in folder ``cwd``), then remove whatever is still labelled with the project (a failed
    ``down`` must not leave anything running)."""
    client: Any = None
    with contextlib.suppress(Exception):
        client = docker_client()
        for container in project_containers(client, project):
            if container.status == "paused":
                container.unpause()
    down = ["-p", project, "-f", file, *DOWN_ARGS]
    with contextlib.suppress(OSError, StackError):
        run_compose(command, down, env, cwd=Path(cwd), timeout=DOWN_SECONDS)
    if client is None:
        return
    label = {"label": f"{PROJECT_LABEL}={project}"}
    with contextlib.suppress(Exception):
        for container in project_containers(client, project):
            container.remove(force=True, v=True)
        for network in client.networks.list(filters=label):
            network.remove()
        for volume in client.volumes.list(filters=label):
            volume.remove(force=True)
    client.close()
