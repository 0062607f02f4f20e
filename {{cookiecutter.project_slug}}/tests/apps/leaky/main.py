"""NEGATIVE CONTROL: a deliberately leaky app. The leak check must report it.

Each session's 20 MB array goes into ``session_context.locals`` (which the project releases) but
also into a registry in an imported module, which outlives every session.
"""

from __future__ import annotations

import numpy as np
from bokeh.io import curdoc
from bokeh.models import Div

import leaky_registry

doc = curdoc()
payload = np.ones(20 * 2**20 // 8)
doc.session_context.locals["payload"] = payload
leaky_registry.SESSION_DATA[doc.session_context.id] = payload  # the leak
doc.add_root(Div(text="leaky"))
