"""Metrics kept inside: the metrics port, ``--use-xheaders`` from settings, and what the alerts read.

With ``METRICS_PORT`` the Bokeh port (the one a proxy exposes) serves ``/healthz`` only, and
``/readyz`` and ``/metrics`` answer on the metrics port; without it they stay on the Bokeh port
(the control). Every metric the alert rules and the Grafana dashboard in ``k8s/monitoring/`` name
exists in ``/metrics`` of a running server, and a misspelt name is reported (the control). The
rules' PromQL itself is checked with promtool by the template's tests.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }}.server.cli import build_parser
from {{ cookiecutter.package_name }}.server.ops import OpsState, ops_patterns, start_metrics_server
from {{ cookiecutter.package_name }}.server.serve import APP_DIR
from {{ cookiecutter.package_name }}.server.settings import SettingsError, env_var, get_settings, load_settings
from {{ cookiecutter.package_name }}_devtools.serving import free_port
from {{ cookiecutter.package_name }}_devtools.testing import http_get, running_server

MONITORING = Path(__file__).resolve().parent.parent / "k8s" / "monitoring"
_METRIC_NAME = re.compile(r"\bbokeh_[a-z_]+\b")
_SAMPLE_NAME = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[ {]", flags=re.MULTILINE)


@pytest.mark.parametrize("separate", [True, False], ids=["metrics-port", "control-one-port"])
def test_metrics_and_readiness_leave_the_bokeh_port(separate: bool) -> None:
    state = OpsState()
    metrics_port = free_port()
    patterns = ops_patterns(state, internal=not separate)
    with running_server(APP_DIR, extra_patterns=patterns) as running:
        ops_server = (
            running.call(lambda: start_metrics_server(state, "127.0.0.1", metrics_port)) if separate else None
        )
        try:
            public = {path: http_get(running.url(path))[0] for path in ("/healthz", "/readyz", "/metrics")}
            if separate:
                assert public == {"/healthz": 200, "/readyz": 404, "/metrics": 404}
                for path in ("/healthz", "/readyz", "/metrics"):
                    assert http_get(f"http://127.0.0.1:{metrics_port}{path}")[0] == 200, path
            else:
                assert public == {"/healthz": 200, "/readyz": 200, "/metrics": 200}
        finally:
            if ops_server is not None:
                running.call(ops_server.stop)


def test_use_xheaders_and_the_metrics_port_come_from_settings(settings_env: pytest.MonkeyPatch) -> None:
    assert build_parser("serve").parse_args(["serve"]).use_xheaders is False  # the default: no proxy
    settings_env.setenv(env_var("use_xheaders"), "true")
    get_settings.cache_clear()
    assert build_parser("serve").parse_args(["serve"]).use_xheaders is True
    with pytest.raises(SettingsError, match=env_var("metrics_port")):
        load_settings({env_var("metrics_port"): str(get_settings().port)})


def monitored_names() -> set[str]:
    """Every ``bokeh_*`` metric named by the alert rules and the dashboard."""
    rules = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text(encoding="utf-8"))
    expressions = [rule["expr"] for group in rules["spec"]["groups"] for rule in group["rules"]]
    dashboard = json.loads((MONITORING / "dashboard.json").read_text(encoding="utf-8"))
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return {name for expression in expressions for name in _METRIC_NAME.findall(expression)}


def missing_names(names: set[str], exposition: str) -> set[str]:
    return names - set(_SAMPLE_NAME.findall(exposition))


@pytest.mark.skipif(not MONITORING.is_dir(), reason="no k8s/monitoring/ in this project")
def test_every_metric_the_alerts_and_dashboard_read_exists() -> None:
    names = monitored_names()
    assert {"bokeh_sessions_refused_total", "bokeh_event_loop_lag_seconds"} <= names
    with running_server(APP_DIR, extra_patterns=ops_patterns(OpsState())) as running:
        status, exposition = http_get(running.url("/metrics"))
    assert status == 200
    assert missing_names(names, exposition) == set()
    # Control: a name as the Python code spells it (without the _total suffix) is reported missing.
    assert missing_names({"bokeh_sessions_refused"}, exposition) == {"bokeh_sessions_refused"}
