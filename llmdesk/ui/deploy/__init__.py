"""The Deploy page's parts: an exported file shown highlighted, the production checklist."""
