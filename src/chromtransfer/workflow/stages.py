"""A minimal stage runner: run named stages in order, skip those already complete.

A stage is complete when its marker ``OUT/stages/<name>.json`` exists; the marker is written only
after the stage function returned, so a killed stage runs again (and a training stage resumes from
its own checkpoints). Timings of every stage, including those done in earlier invocations, are kept
in the markers and gathered into the study summary.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..artifacts import write_json

log = logging.getLogger("chromtransfer.workflow")


@dataclass
class Stage:
    name: str
    run: Callable[[], dict[str, Any] | None]
    description: str = ""


class StageRunner:
    """Runs :class:`Stage` objects in order under ``out``; see the module docstring."""

    def __init__(self, out: str | Path, echo: Callable[[str], None] = print):
        self.out = Path(out)
        self.marker_dir = self.out / "stages"
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        self.echo = echo

    def marker(self, name: str) -> Path:
        return self.marker_dir / f"{name.replace('/', '_')}.json"

    def is_complete(self, name: str) -> bool:
        return self.marker(name).exists()

    def result(self, name: str) -> dict[str, Any]:
        return json.loads(self.marker(name).read_text()).get("result", {})

    def run(self, stage: Stage) -> dict[str, Any]:
        if self.is_complete(stage.name):
            self.echo(f"[skip] {stage.name}: complete")
            return self.result(stage.name)
        self.echo(f"[run ] {stage.name}{': ' + stage.description if stage.description else ''}")
        started = time.perf_counter()
        result = stage.run() or {}
        seconds = time.perf_counter() - started
        write_json(self.marker(stage.name), {"stage": stage.name, "status": "complete",
                                             "seconds": round(seconds, 3), "result": result})
        self.echo(f"[done] {stage.name} in {seconds:.1f} s")
        return result

    def timings(self) -> dict[str, float]:
        """Seconds per completed stage, in the order the markers were written."""
        markers = sorted(self.marker_dir.glob("*.json"), key=lambda p: p.stat().st_mtime)
        documents = [json.loads(p.read_text()) for p in markers]
        return {d["stage"]: d["seconds"] for d in documents}
