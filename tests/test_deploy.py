"""The compose file and Dockerfile, checked by parsing (no Docker engine runs here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from digits.settings import Settings
from ingest.watcher import HEARTBEAT_FILE, HEARTBEAT_SECONDS
from tests.conftest import REPO


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_has_redis_workers_and_ingester_with_health_checks():
    services = compose()["services"]
    assert {"redis", "worker", "ingester"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"
        assert "container_name" not in service, f"{name}: a fixed name breaks --scale"


def test_redis_is_persistent_and_has_a_password():
    redis = compose()["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--requirepass" in command
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert "ports" not in redis, "Redis must not be published on the host"


def test_a_page_worker_reads_long_documents_and_a_full_redis_never_evicts():
    services = compose()["services"]
    pages = services["page-worker"]
    assert pages["command"][:2] == ["worker", "--pages"], "long documents' pages would wait forever"
    assert "ports" not in pages
    assert pages["environment"] == services["worker"]["environment"]
    # Evicted marks would let a message delivered again write its rows twice.
    assert "--maxmemory-policy noeviction" in " ".join(services["redis"]["command"])


def test_workers_scale_and_every_setting_named_exists():
    services = compose()["services"]
    worker = services["worker"]
    assert "ports" not in worker, "a published port would stop `--scale worker=N`"
    assert worker["command"][0] == "worker" and services["ingester"]["command"][0] == "ingest"
    known = {f"DIGITS_{name.upper()}" for name in Settings.model_fields}
    for name in ("worker", "ingester"):
        env = services[name]["environment"]
        assert set(env) <= known, f"{name}: unknown settings {set(env) - known}"
        assert ":${REDIS_PASSWORD" in env["DIGITS_REDIS_URL"]


def test_dockerfile_copies_what_exists_and_runs_the_cli():
    text = (REPO / "Dockerfile").read_text()
    copied = [part for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE) for part in line.split()[:-1]]
    assert "model_store" in copied, "the image needs the shipped model"
    for source in copied:
        assert (REPO / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
    assert 'ENTRYPOINT ["digits"]' in text
    assert re.search(r"^USER (?!root)", text, re.MULTILINE), "containers should not run as root"


def installed_packages() -> list[str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def test_dockerfile_copies_every_package_the_project_installs():
    folders = {package.split(".")[0] for package in installed_packages()}
    copied = re.findall(r"^COPY (\S+) \./\1$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert folders <= set(copied), f"`pip install .` in the image would miss {folders - set(copied)}"


def test_pip_install_carries_every_package_with_code():
    listed = set(installed_packages())
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for root in {package.split(".")[0] for package in listed}
        for init in (REPO / root).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    data_only = {package for package in listed - found if not list((REPO / package.replace(".", "/")).glob("*.py"))}
    assert found == listed - data_only, f"pyproject.toml's packages miss {found - listed} or list {listed - found}"
    assert all((REPO / package.replace(".", "/")).is_dir() for package in data_only)


def test_flower_watches_the_same_redis_behind_a_password_and_only_on_this_host():
    services = compose()["services"]
    flower = services["flower"]
    assert ":${REDIS_PASSWORD" in " ".join(flower["command"]) and "@redis:6379" in " ".join(flower["command"])
    assert "${FLOWER_PASSWORD" in flower["environment"]["FLOWER_BASIC_AUTH"]
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"]), "Flower must not face the network"
    assert "--task-events" in services["worker"]["command"], "without task events Flower shows no tasks"
    assert flower["depends_on"]["redis"]["condition"] == "service_healthy"


def test_workers_expose_their_metrics_port_and_the_ingester_is_checked_by_its_heartbeat():
    services = compose()["services"]
    assert str(Settings().metrics_port) in services["worker"]["expose"]
    ingester = services["ingester"]
    heartbeat = Path(ingester["environment"]["DIGITS_ARCHIVE"]) / HEARTBEAT_FILE
    assert str(heartbeat) in " ".join(ingester["healthcheck"]["test"])
    assert ingester["healthcheck"]["interval"] == "30s" and HEARTBEAT_SECONDS < 30
