"""flags.txt as people paste it: every form gives the same flags, secrets stay out.

The real inputs: the lab's recorded command line (vllm-0.32-cpu-lab/flags.txt), `ps -ef` / `ps auxww` output
recorded on this VM (tests/fixtures/pasted/README.md), the repository's docker-compose.yml, and manifests in
the shape of vLLM's own Kubernetes example. The shell variants are built from the recorded line.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from diagnose.bundle import read_bundle
from diagnose.derive.evidence import build_evidence
from diagnose.derive.flags import env_float, environment, parse_flags, read_launch

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
PASTED = FIXTURES / "pasted"
LAB_LINE = (FIXTURES / "vllm-0.32-cpu-lab" / "flags.txt").read_text().strip()
LAB_FLAGS = {
    "--model": "/work/lab/model",
    "--served-model-name": "lab-reranker",
    "--runner": "pooling",
    "--max-model-len": "2048",
    "--host": "127.0.0.1",
    "--port": "40191",
}
WITH_KEY = {**LAB_FLAGS, "--api-key": "<redacted>"}  # the recordings add a fake --api-key
SECRET = "sk-fixture-not-a-secret"


def _lab_argv() -> list[str]:
    tokens = shlex.split(LAB_LINE)
    return [t for t in tokens if "=" not in t or t.startswith("-")]  # drop the VAR=value prefixes


def test_the_recorded_shell_line_gives_the_flags_and_its_environment() -> None:
    assert parse_flags(LAB_LINE) == LAB_FLAGS
    assert environment(LAB_LINE) == {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1"}
    assert read_launch(LAB_LINE).form == "shell"


def test_a_comment_first_then_the_command_then_env_lines_gives_the_same_flags() -> None:
    # The issue's hand-run bundle: "# ..." first, the command line, then VAR=value lines.
    text = "# vLLM on the lab box, copied from the shell history\n" + shlex.join(_lab_argv())
    text += "\nVLLM_CPU_KVCACHE_SPACE=1\nexport VLLM_NO_USAGE_STATS=1\n"
    assert parse_flags(text) == LAB_FLAGS
    assert environment(text) == {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1"}


def test_a_command_continued_with_backslashes_gives_the_same_flags() -> None:
    argv = _lab_argv()
    lines = [shlex.join(argv[:3])] + [shlex.join(argv[i : i + 2]) for i in range(3, len(argv), 2)]
    text = "VLLM_CPU_KVCACHE_SPACE=1 \\\n" + " \\\n    ".join(lines) + "\n"
    assert parse_flags(text) == LAB_FLAGS
    assert env_float(environment(text), "VLLM_CPU_KVCACHE_SPACE") == 1.0


@pytest.mark.parametrize("name", ["ps-ef.txt", "ps-auxww.txt"])
def test_recorded_ps_output_gives_the_same_flags_without_the_grep_line(name: str) -> None:
    text = (PASTED / name).read_text()
    launch = read_launch(text)
    assert launch.form == "ps"
    # The interpreter's `-c <code>` before the entry point is not a vLLM flag.
    assert parse_flags(text) == WITH_KEY
    assert SECRET not in launch.command_line and "--api-key ***" in launch.command_line


def test_recorded_ps_line_alone_gives_the_same_flags() -> None:
    line = next(line for line in (PASTED / "ps-ef.txt").read_text().splitlines() if "--model" in line)
    assert parse_flags(line) == WITH_KEY


def test_a_kubernetes_args_list_with_equals_forms_gives_the_same_flags() -> None:
    text = (PASTED / "k8s-deployment.yaml").read_text()
    launch = read_launch(text)
    assert launch.form == "yaml"
    assert parse_flags(text) == WITH_KEY
    # env: a plain value is kept; a valueFrom secret has no value to show.
    assert launch.env == {"VLLM_CPU_KVCACHE_SPACE": "1"}
    assert SECRET not in launch.command_line


def test_the_kubernetes_args_block_pasted_alone_gives_the_same_flags() -> None:
    text = (PASTED / "k8s-deployment.yaml").read_text()
    block = text[text.index("        args:") : text.index("        env:")]
    assert parse_flags(block) == WITH_KEY


def test_vllm_docs_sh_c_manifest_reads_the_command_inside_the_shell_string() -> None:
    flags = parse_flags((PASTED / "k8s-docs-sh-c.yaml").read_text())
    assert flags == {
        "--port": "8000",
        "--trust-remote-code": "true",
        "--enable-chunked-prefill": "true",
        "--max-num-batched-tokens": "1024",
    }


COMPOSE_FLAGS = {
    "--model": "Qwen/Qwen3-Reranker-0.6B",
    "--runner": "pooling",
    "--hf-overrides": (
        '{"architectures":["Qwen3ForSequenceClassification"],"classifier_from_token":["no","yes"],'
        '"is_original_qwen3_reranker":true}'
    ),
    "--chat-template": "/templates/qwen3_reranker.jinja",
    "--max-model-len": "4096",
    "--api-server-count": "2",
    "--host": "0.0.0.0",
    "--port": "8000",
}


def test_the_repository_compose_file_gives_the_vllm_service_flags_not_the_exporters() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    launch = read_launch(text)
    assert launch.argv[:3] == ("python3", "-m", "vllm.entrypoints.openai.api_server")
    assert parse_flags(text) == COMPOSE_FLAGS
    assert launch.env["VLLM_NO_USAGE_STATS"] == "1"
    assert launch.env["HF_TOKEN"] == "***"  # `${HF_TOKEN:-}`: a secret's name, its value never shown


def test_a_compose_command_list_pasted_alone_gives_the_same_flags() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    block = text[text.index("x-vllm-command:") : text.index("x-vllm-common:")]
    assert parse_flags(block) == COMPOSE_FLAGS


def test_compose_command_as_a_string_and_as_a_flow_list_give_the_same_flags() -> None:
    argv = _lab_argv()[3:]  # compose's command: the image's entrypoint runs vLLM
    as_string = f"    command: {shlex.join(argv)}\n"
    as_flow = f"command: {json.dumps(argv)}\n"
    assert parse_flags(as_string) == LAB_FLAGS
    assert parse_flags(as_flow) == LAB_FLAGS


def test_secret_environment_values_are_masked_and_others_kept() -> None:
    text = "HF_TOKEN=hf_abcdef VLLM_API_KEY=abc123 VLLM_CPU_KVCACHE_SPACE=4 vllm serve m --port 8000"
    env = environment(text)
    assert env == {"HF_TOKEN": "***", "VLLM_API_KEY": "***", "VLLM_CPU_KVCACHE_SPACE": "4"}
    assert env_float(env, "VLLM_CPU_KVCACHE_SPACE") == 4.0
    assert env_float(env, "HF_TOKEN") is None  # "***" is not a number
    assert env_float(env, "UNSET") is None


def test_a_text_with_no_command_gives_no_flags() -> None:
    launch = read_launch("# nothing here yet\nVLLM_CPU_KVCACHE_SPACE=1\n")
    assert launch.argv == () and launch.form == "none"
    assert launch.env == {"VLLM_CPU_KVCACHE_SPACE": "1"}
    assert parse_flags("load: concurrency=8 docs_per_request=10") == {}


def test_a_hand_run_bundle_with_a_commented_flags_file_knows_max_model_len(tmp_path: Path) -> None:
    # The issue: "# ..." first, then the command, then VAR=value lines gave no max_model_len.
    (tmp_path / "flags.txt").write_text(
        "# copied from the server\n"
        + shlex.join(_lab_argv())
        + f" --api-key {SECRET}\nVLLM_CPU_KVCACHE_SPACE=1\n"
    )
    (tmp_path / "ss-s.txt").write_text((PASTED / "ss-s.txt").read_text())
    bundle = read_bundle(tmp_path)
    assert bundle.server.flags is not None and SECRET not in bundle.server.flags
    assert bundle.server.env == {"VLLM_CPU_KVCACHE_SPACE": "1"}
    ev = build_evidence(bundle)
    assert ev.config.flag_max_model_len == 2048
    assert ev.config.max_model_len == 2048


def test_a_flags_file_without_a_command_is_an_issue_that_names_the_fix(tmp_path: Path) -> None:
    (tmp_path / "flags.txt").write_text("# TODO paste the command\n")
    (tmp_path / "ss-s.txt").write_text((PASTED / "ss-s.txt").read_text())
    bundle = read_bundle(tmp_path)
    assert bundle.server.flags is None
    issue = next(i for i in bundle.issues if i.collector == "server")
    assert "no vLLM command line" in issue.reason and "ps -ef" in issue.fix


def test_a_pasted_manifests_secret_never_reaches_a_rewritten_bundle(tmp_path: Path) -> None:
    from diagnose.bundle import write_bundle

    source, copy = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    (source / "flags.txt").write_text((PASTED / "k8s-deployment.yaml").read_text())
    (source / "ss-s.txt").write_text((PASTED / "ss-s.txt").read_text())
    bundle = read_bundle(source)
    assert parse_flags(bundle.server.flags or "") == WITH_KEY
    write_bundle(bundle, copy)
    for path in copy.iterdir():
        assert SECRET not in path.read_text(errors="replace"), path.name
    again = read_bundle(copy)
    assert parse_flags(again.server.flags or "") == WITH_KEY
    assert again.server.env == {"VLLM_CPU_KVCACHE_SPACE": "1"}


def test_interpreter_options_before_the_entry_point_are_not_vllm_flags() -> None:
    line = "/usr/bin/python3 -u -X dev -m vllm.entrypoints.openai.api_server --model /m -tp 2 --port 8001"
    assert parse_flags(line) == {"--model": "/m", "--tensor-parallel-size": "2", "--port": "8001"}
    # Without an entry point (compose's command: under the image's entrypoint) every flag counts.
    assert parse_flags("--model /models/vllm-reranker --port 8001") == {
        "--model": "/models/vllm-reranker",
        "--port": "8001",
    }
