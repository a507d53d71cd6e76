"""Data files that ship inside the package: ``models_dev.json.gz``, the bundled models.dev snapshot.

Built by ``scripts/build_catalog.py``; read through ``modelforge.catalog.Catalog.bundled()``.
"""
