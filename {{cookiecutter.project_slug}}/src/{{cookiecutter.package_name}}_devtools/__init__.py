"""Development tools of the project: test servers, the leak check, the memory monitor.

They drive and measure the server from outside; none of them is part of the server. They are not
in the wheel or the container image (``pyproject.toml`` packages only the project's package), and
the project's package never imports them (tests/test_layout.py checks the import graph).
"""
