"""Reading vLLM's /metrics: the exposition parser and the table of names vLLM has used for each concept."""
