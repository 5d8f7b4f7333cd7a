"""The scenario report's timeline figure: one panel per view, all on the same time axis."""

from __future__ import annotations

from loadtest.generator import Record
from loadtest.report import timeline, timeline_figure


def test_the_timeline_shows_status_mix_rungs_feature_sources_and_breakers() -> None:
    records = [
        Record(0.1, 0.002, 200, 0, "primary", "fraud-v1", "live", 0.1),
        Record(1.2, 0.002, 200, 1, "fallback", "fallback:onnx", "cache", 0.9),
        Record(1.4, 0.010, 503, 1),
    ]
    doc = {"scenario": "s", "timeline": timeline(records), "faults": [{"at": 1.0}]}
    figure = timeline_figure(doc)
    assert len(figure.axes) == 5
    status, breakers = figure.axes[0], figure.axes[4]
    labels = [[t.get_text() for t in a.get_legend().get_texts()] for a in figure.axes[:4]]
    assert labels[0] == ["200", "503"]
    assert labels[2] == ["fallback:onnx", "fraud-v1"]
    assert labels[3] == ["cache", "live"]
    assert [list(line.get_ydata()) for line in status.get_lines()[:2]] == [[1, 1], [0, 1]]
    assert breakers.get_title(loc="left") == "breaker states"
    assert all(len(a.get_lines()) >= 1 for a in figure.axes)  # the fault marker everywhere
