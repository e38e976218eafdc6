"""The GPUs of this machine (NVML: a scan, and a sampler for live figures) and the catalogue of GPUs a
person can plan for without having them. May import: base."""
