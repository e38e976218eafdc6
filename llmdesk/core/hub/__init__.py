"""Models from the Hugging Face Hub and on disk: search, one model's details, its quantized variants
judged by the fit, downloads with resume, the local library, and a ModelSpec from a folder,
a config.json or a repo id. May import: fit, machine, base."""
