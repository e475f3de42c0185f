"""``python -m bench.simulate`` on the real traces: skyclass beats the student system on
every one, and the report and plots land in the docs folder around the prose."""

from __future__ import annotations

import pytest

from bench import simulate


@pytest.mark.slow
def test_skyclass_beats_the_student_on_every_trace_and_the_report_says_so(tmp_path):
    # GIVEN a scaling page with prose around the generated block
    page = tmp_path / "scaling.md"
    page.write_text(f"# Scaling\n\nprose before\n\n{simulate.BEGIN}\nold\n{simulate.END}\n"
                    "\nprose after\n")
    # WHEN the simulator runs
    code = simulate.main(["--docs", str(tmp_path)])
    # THEN it found skyclass cheaper at no worse p95 on every trace ...
    assert code == 0
    text = page.read_text()
    for trace in ("burst", "poisson", "day"):
        assert f"- **{trace}: skyclass beats the student:" in text
        assert (tmp_path / f"scaling-{trace}.png").read_bytes().startswith(b"\x89PNG")
    # ... and replaced only its own block
    assert "prose before" in text and "prose after" in text and "\nold\n" not in text
    assert "| burst | student |" in text
