"""A production Bokeh server app whose sessions release their memory when they end.

The package has two rooms: ``app/`` is yours (the Bokeh app and its data), ``server/`` is the
template's runtime (lifecycle, memory, operations, the ``serve`` command), which ``cruft update``
keeps current and which never imports ``app/``. What your app needs from the runtime is here::

    from <package> import on_session_end, session_locals
"""

from __future__ import annotations

from .server.cleanup import on_every_session_end, on_session_end
from .server.per_process import per_process
from .server.session_locals import OutsideSessionError, SessionLocals, session_locals
from .server.session_users import User, current_user
from .server.settings import PROJECT_NAME, SettingsError, app_setting

__version__ = "0.1.0"

__all__ = [
    "PROJECT_NAME",
    "OutsideSessionError",
    "SessionLocals",
    "SettingsError",
    "User",
    "app_setting",
    "current_user",
    "on_every_session_end",
    "on_session_end",
    "per_process",
    "session_locals",
]
