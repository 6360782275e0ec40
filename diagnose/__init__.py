"""rerank-doctor: finds why a vLLM reranker is slow and which vLLM flags to change."""

__version__ = "0.1.0"
