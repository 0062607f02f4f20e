"""Your app: the Bokeh directory app the server runs (``main.py`` + ``app_hooks.py``) and its data.

Everything in this folder is yours to edit; ``cruft update`` of the template leaves it to you.
The runtime in ``../server`` never imports it: it serves this directory and calls the hooks that
``app_hooks.py`` hands it.
"""
