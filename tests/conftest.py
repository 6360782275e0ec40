"""Shared fixtures. The 0.26 H200 captures live outside the repo, in ../shared/captures (see its README)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

# The lab helper owns the real-vLLM fixtures; they live in their own file.
pytest_plugins = ["lab_fixtures"]

REPO = Path(__file__).resolve().parent.parent
CAPTURES_SRC = REPO.parent / "shared" / "captures" / "gpu-vllm-0.26"
SCENARIOS = (
    "s1_idle",
    "s2_healthy_c8_d10_w100",
    "s3_gpu_saturated_c64_d80_w300",
    "s4_kv_pressure_blocks512_c32_d20_w800",
    "s5_cpu_bound_tiny_c32_d500_w3",
)


@pytest.fixture(scope="session")
def captures_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The five real vLLM 0.26 captures from the H200, unpacked once per test session."""
    if not CAPTURES_SRC.is_dir():
        message = f"the real vLLM captures are not at {CAPTURES_SRC} (they come with the shared/ folder)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI has shared/ beside the clone: a missing replay is a failure there
        pytest.skip(message)
    out = tmp_path_factory.mktemp("captures")
    for name in SCENARIOS:
        with tarfile.open(CAPTURES_SRC / f"{name}.tar.gz") as tar:
            tar.extractall(out, filter="data")
    return out
