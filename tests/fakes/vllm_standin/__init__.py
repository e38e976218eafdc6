"""A stand-in for vLLM 0.26.0 that runs on any Python 3.11 without a GPU (see runtime.py)."""
