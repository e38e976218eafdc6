"""The Models page's parts (core domain: hub): search, a model's variants, downloads, and the models on disk."""
