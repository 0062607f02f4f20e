"""An unverified Bokeh: the server fails open, says so once, and shows which pieces are off.

``server/patches.py`` decides which pieces that use Bokeh internals are on. The unit tests change
what it sees (the version, a fingerprint, the settings) and check its decisions; the server tests
run ``python -m <package> serve`` with the runtime seeing Bokeh 3.11.0 (``<pkg>_devtools.pretend``;
Bokeh itself untouched) and, as the control in the same test, the installed, verified Bokeh.
Each can fail: were a piece left on (or the server to refuse to start) on an unverified Bokeh, or
off on a verified one, the assertions on ``/metrics``, ``/healthz`` and the log would break.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Iterator

import pytest
from bokeh.client import pull_session

from {{ cookiecutter.package_name }}.server import cli, patches
from {{ cookiecutter.package_name }}.server.settings import SettingsError, env_var, get_settings
from {{ cookiecutter.package_name }}_devtools.pretend import pretend_bokeh_env
from {{ cookiecutter.package_name }}_devtools.serving import free_port, project_command, project_server
from {{ cookiecutter.package_name }}_devtools.testing import http_get

UNVERIFIED = "3.11.0"
WARNING_MARK = "running WITHOUT"


def redecide() -> dict[str, patches.Status]:
    """Read the settings again and decide again."""
    get_settings.cache_clear()
    patches.reset()
    return patches.statuses()


@pytest.fixture
def decide(settings_env: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Change what the registry sees; the suite's own decision is restored afterwards."""
    patches.reset()
    yield settings_env
    settings_env.undo()
    redecide()


def test_on_this_verified_bokeh_every_piece_is_on(decide: pytest.MonkeyPatch) -> None:
    if not patches.is_verified(patches.bokeh_version()):
        pytest.skip(f"the installed Bokeh reports {patches.bokeh_version()}, not a verified version")
    assert {name: status.active for name, status in patches.statuses().items()} == dict.fromkeys(
        patches.NAMES, True
    )


def test_an_unverified_version_turns_every_piece_off_with_one_warning(
    decide: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    decide.setattr(patches, "bokeh_version", lambda: UNVERIFIED)
    caplog.set_level(logging.INFO, logger=patches.__name__)
    assert not any(status.active for status in patches.statuses().values())
    patches.statuses()
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert UNVERIFIED in warnings[0] and env_var("bokeh_patches") in warnings[0]
    assert all(name in warnings[0] for name in patches.NAMES)


def test_matching_uses_the_pieces_whose_code_still_matches(decide: pytest.MonkeyPatch) -> None:
    decide.setattr(patches, "bokeh_version", lambda: UNVERIFIED)
    decide.setenv(env_var("bokeh_patches"), "matching")
    assert all(status.active for status in patches.statuses().values())


def test_changed_bokeh_code_turns_its_piece_off_even_on_a_verified_version(
    decide: pytest.MonkeyPatch,
) -> None:
    fingerprints = dict(patches.FINGERPRINTS)
    fingerprints["stall_free"] = (("bokeh.document.document:Document.destroy", ("a line Bokeh never had",)),)
    fingerprints["keep_modules"] = (("bokeh.document.no_such_module:Thing", ()),)
    decide.setattr(patches, "FINGERPRINTS", fingerprints)
    decide.setattr(patches, "bokeh_version", lambda: "3.10.0")
    decided = patches.statuses()
    assert not decided["stall_free"].active and "no longer contains" in decided["stall_free"].reason
    assert not decided["keep_modules"].active and "is missing" in decided["keep_modules"].reason
    assert decided["server_control"].active  # control: untouched pieces stay on


def test_a_piece_goes_off_with_what_it_needs(decide: pytest.MonkeyPatch) -> None:
    fingerprints = dict(patches.FINGERPRINTS)
    fingerprints["server_control"] = (("bokeh.server.tornado:NoSuchClass", ()),)
    decide.setattr(patches, "FINGERPRINTS", fingerprints)
    decided = patches.statuses()
    for name in ("session_gate", "sliced_expiry"):
        assert not decided[name].active and decided[name].reason.startswith("needs server_control")
    assert decided["stall_free"].active == patches.is_verified(patches.bokeh_version())


def test_off_and_the_coalesce_gc_switch(decide: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    decide.setenv(env_var("coalesce_gc"), "false")
    assert not redecide()["stall_free"].active
    assert env_var("coalesce_gc") in patches.statuses()["stall_free"].reason
    decide.setenv(env_var("bokeh_patches"), "off")
    caplog.clear()
    caplog.set_level(logging.INFO, logger=patches.__name__)
    assert not any(status.active for status in redecide().values())
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_required_pieces_fail_closed_and_bad_values_are_named(decide: pytest.MonkeyPatch) -> None:
    decide.setenv(env_var("required_patches"), "session_gate")
    if redecide()["session_gate"].active:
        patches.require_active()  # control: on, so nothing is refused
    decide.setattr(patches, "bokeh_version", lambda: UNVERIFIED)
    redecide()
    with pytest.raises(SettingsError, match=f"{env_var('required_patches')}: session_gate is off"):
        patches.require_active()
    decide.setenv(env_var("required_patches"), "admission")
    redecide()
    with pytest.raises(SettingsError, match="unknown piece 'admission'"):
        patches.require_active()
    decide.setenv(env_var("bokeh_patches"), "sometimes")
    with pytest.raises(SettingsError, match=env_var("bokeh_patches")):
        redecide()


def test_the_patches_command_lists_each_piece_and_fails_when_one_is_off(
    decide: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = 0 if all(status.active for status in patches.statuses().values()) else 1
    assert cli.main(["patches"]) == expected
    listed = capsys.readouterr().out
    assert all(name in listed for name in patches.NAMES), listed
    decide.setattr(patches, "bokeh_version", lambda: UNVERIFIED)
    patches.reset()
    assert cli.main(["patches"]) == 1
    out = capsys.readouterr().out
    assert f"Bokeh {UNVERIFIED}: NOT verified" in out and out.count("OFF") == len(patches.NAMES), out


def patch_gauges(metrics_text: str) -> dict[str, float]:
    """``bokeh_runtime_patch_active{patch="..."}`` samples by piece."""
    found = {}
    for line in metrics_text.splitlines():
        if line.startswith('bokeh_runtime_patch_active{patch="'):
            name = line.split('"')[1]
            found[name] = float(line.rsplit(" ", 1)[1])
    return found


def serve_and_report(env: dict[str, str]) -> tuple[dict[str, float], dict[str, object], str]:
    """Start the CLI, pull a session with its plot, read /metrics and /healthz, stop; and the log."""
    with project_server(env=env) as server:
        with pull_session(url=server.url("/app")) as session:
            assert session.document.get_model_by_name("main_plot") is not None
        gauges = patch_gauges(http_get(server.url("/metrics"))[1])
        status, health = http_get(server.url("/healthz"))
        assert status == 200
        assert server.stop() == 0
    return gauges, json.loads(health), server.log


def test_the_server_on_an_unverified_bokeh_starts_serves_and_reports_the_pieces_off() -> None:
    gauges, health, log = serve_and_report(pretend_bokeh_env(UNVERIFIED))
    assert gauges == dict.fromkeys(patches.NAMES, 0.0), gauges
    assert health["bokeh"] == UNVERIFIED and health["bokeh_verified"] is False
    assert not any(piece["active"] for piece in health["patches"].values()), health
    warnings = [line for line in log.splitlines() if WARNING_MARK in line]
    assert len(warnings) == 1, log[-3000:]
    assert UNVERIFIED in warnings[0] and env_var("bokeh_patches") in warnings[0]
    assert "Traceback" not in log, log[-3000:]
    # Control: the installed (verified) Bokeh runs every piece, and says nothing of the kind.
    version = patches.bokeh_version()
    if not patches.is_verified(version):
        pytest.skip(f"the control needs a verified Bokeh; this one reports {version}")
    gauges, health, log = serve_and_report({})
    assert gauges == dict.fromkeys(patches.NAMES, 1.0), gauges
    assert health["bokeh"] == version and health["bokeh_verified"] is True
    assert WARNING_MARK not in log


def test_a_required_piece_that_is_off_stops_the_start_with_one_line() -> None:
    env = {**os.environ, **pretend_bokeh_env(UNVERIFIED), env_var("required_patches"): "session_gate"}
    command = project_command(free_port())
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2, completed.stderr[-2000:]
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in completed.stderr, completed.stderr[-2000:]
    assert errors[0].startswith(f"error: {env_var('required_patches')}: session_gate is off"), errors
