"""A vLLM server: finding or installing a runtime, LaunchConfig -> `vllm serve` argv (pure), log lines
-> start-up phases and failures with fixes, the supervised process group, and the endpoint where a
server is reached. May import: fit, machine, base."""
