"""Will a model run under vLLM 0.26 on these GPUs: its geometry from config.json, parameter counts,
quantization formats and GPU support, the architectures vLLM serves, the memory model with its
verdicts, and vLLM's own memory log lines it is calibrated on. Pure functions. May import: machine, base."""
