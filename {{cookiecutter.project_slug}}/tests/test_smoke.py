"""Smoke tests: the app serves a page and a websocket client pulls a document with the plot."""

from __future__ import annotations

from bokeh.models import Plot, Slider

from {{ cookiecutter.package_name }}_devtools.testing import RunningServer, http_get


def test_page_get_returns_the_bokeh_script(server: RunningServer) -> None:
    status, page = http_get(server.url())
    assert status == 200
    assert "Bokeh.embed.embed_items" in page or "embed_items" in page
    assert '"token"' in page


def test_websocket_session_pulls_the_plot_and_slider(server: RunningServer) -> None:
    from bokeh.client import pull_session

    with pull_session(url=server.url()) as session:
        document = session.document
        plot = document.get_model_by_name("main_plot")
        slider = document.get_model_by_name("window")
        assert isinstance(plot, Plot)
        assert isinstance(slider, Slider)
        assert len(plot.renderers) == 1


def test_slider_callback_changes_the_plot_server_side(server: RunningServer) -> None:
    from bokeh.client import pull_session

    with pull_session(url=server.url()) as session:
        session.document.get_model_by_name("window").value = 30
        session.force_roundtrip()

        def server_side_y() -> list[float]:
            (live,) = server.server.get_sessions()
            plot = live.document.get_model_by_name("main_plot")
            return list(plot.renderers[0].data_source.data["y"][:5])

        smoothed = server.call(server_side_y)
    with pull_session(url=server.url()) as fresh:
        raw = list(fresh.document.get_model_by_name("main_plot").renderers[0].data_source.data["y"][:5])
    assert smoothed != raw
