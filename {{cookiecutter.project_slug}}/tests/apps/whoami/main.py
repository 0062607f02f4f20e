"""A test app whose page title says what the server saw of the page request.

tests/test_deploy.py serves it behind nginx with TLS: the title shows the scheme and the client
address the app sees (``session_context.request``, Tornado's request behind ``--use-xheaders``) and
which backend built the page (``WHOAMI_BACKEND``).
"""

from __future__ import annotations

import os

from bokeh.io import curdoc
from bokeh.models import Div

doc = curdoc()
request = doc.session_context.request
backend = os.environ.get("WHOAMI_BACKEND", "?")
doc.title = f"scheme={request.protocol} client={request.remote_ip} backend={backend}"
doc.add_root(Div(text="whoami"))
