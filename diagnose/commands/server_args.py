"""The flags every command that reads a live vLLM server takes: how to find its processes, its key, NVML."""

from __future__ import annotations

import argparse
import os


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pid", type=int, help="the vLLM API server's pid, if the port does not lead to it")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("VLLM_API_KEY"),
        help="key for a server started with --api-key (default $VLLM_API_KEY); never printed or saved",
    )
    parser.add_argument("--no-gpu", action="store_true", help="skip NVML")
