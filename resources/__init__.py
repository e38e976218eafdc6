"""Icons, desktop entry and metainfo, shipped with the package."""
