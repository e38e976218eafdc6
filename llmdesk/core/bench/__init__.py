"""Benchmarks of a running OpenAI-compatible server (#19): the figures of each load level, with vLLM's
own definitions. Uses a server (server.endpoint) like chat and metrics; none of them needs another."""
