"""The template's runtime: what turns ``bokeh serve`` of your app into a production server.

Owned by the template (``cruft update`` replaces it); edit ``../app`` instead. It never imports
``..app`` (tests/test_layout.py checks the import graph): it serves the app directory and learns
what the app shares through ``per_process`` declarations.
"""
