"""The Models page's parts: search, a model's variants, downloads, and the models on disk."""
