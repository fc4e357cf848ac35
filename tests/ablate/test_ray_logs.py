"""Ray's lines go to the sweep's ray.log, not to the terminal the live view draws on."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.ray_logs import RayLogFile


def test_the_raylets_error_messages_go_to_ray_log(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A trial process killed (a lost worker, Ray's memory monitor) made the raylet's message, in ANSI
    colours, appear among the live view's lines: Ray prints such messages on the driver's stdout
    whatever log_to_driver says."""
    import ray._private.worker as ray_worker

    message = {"lines": ["A worker died or was killed while executing a task"], "pid": "raylet",
               "is_err": False}
    with RayLogFile(verbose=False) as logs:
        logs.capture()
        ray_worker.print_to_stdstream(message, ignore_prefix=False)  # as Ray's error listener calls it
        logs.attach(tmp_path)
    assert capsys.readouterr() == ("", "")
    assert "(raylet) A worker died or was killed while executing a task" in (tmp_path / "ray.log").read_text()
    ray_worker.print_to_stdstream(message, ignore_prefix=False)  # after the sweep: Ray's own way again
    assert "A worker died" in capsys.readouterr().out
