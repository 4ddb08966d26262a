"""A minimal stage runner: run named stages in order, skip those whose results are up to date.

Each stage has a *fingerprint* of what determines its result: its slice of the config (dotted keys
after defaults, e.g. ``prepare.length``), the identity of the files it reads from outside the study
(:func:`file_identity`), the fingerprints of the stages it depends on, and the package version. The
marker ``OUT/stages/<name>.json`` records the fingerprint when the stage starts (``"status":
"running"``) and its result and time when it ends (``"complete"``). On the next run a stage is

* skipped (``[skip]``) when its marker is complete and its fingerprint unchanged;
* resumed (``[run ]``, "resuming") when it was killed midway with the same fingerprint: a training
  stage continues from its own checkpoints;
* redone (``[redo]``, with the reason: ``prepare.length 300 -> 200``, ``depends on prepare/HepG2
  (redone)``, ``input genome.fa changed``) when the fingerprint changed: its outputs (folders the
  study owns) are removed first, so a training stage starts afresh rather than from stale
  checkpoints. A dependency's fingerprint is part of its dependents', so they are redone too.

A key that a newer chromtransfer adds to a stage's settings (a new option) does not count as a
change when the config does not set it: a new option's default is, by rule, what the versions
before it did. Such a stage is kept (``[skip] ...: complete (kept: train.finetune.rc_augment is
new, at the default)``), its marker takes the new fingerprint, and the stages that read it are
judged against that (they are not redone for it). A config that sets the new key, to any value,
redoes the stage. The runner learns which keys the config sets from ``given``; without it (``None``)
every added key is a change.

Markers written before fingerprints existed (no ``fingerprint``) are accepted as complete and given
the current fingerprint (``[skip] ...: complete (recorded before fingerprints; kept)``): their
results cost GPU-days and were made from the config of that time; remove the marker (or the study
folder) to redo such a stage. With ``dry_run`` the runner only says what it would do.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..artifacts import file_sha256, package_version, write_json

log = logging.getLogger("chromtransfer.workflow")

#: Input files smaller than this are identified by their content (SHA-256) and size; larger ones
#: (a genome, a signal matrix) by size and modification time, so a rerun reads no gigabytes.
HASH_LIMIT = 64 * 1024 * 1024
#: Reasons shown per redone stage (the marker keeps the whole fingerprint).
SHOWN_REASONS = 3


@dataclass
class Stage:
    """One step of a study.

    Attributes:
        name: unique name, e.g. ``train/HepG2/finetune/fold0``.
        run: does the work; returns a JSON-able result kept in the marker.
        description: shown when the stage runs.
        settings: the config values that determine the result, as dotted keys (``prepare.length``).
        inputs: files (or folders) outside the study that the stage reads.
        depends: names of the stages whose results it reads (run earlier in the same study).
        outputs: files and folders under the study folder that the stage alone writes; removed
            before the stage is redone.
    """

    name: str
    run: Callable[[], dict[str, Any] | None]
    description: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    inputs: Sequence[str | os.PathLike] = ()
    depends: Sequence[str] = ()
    outputs: Sequence[str | os.PathLike] = ()


@dataclass
class Decision:
    """What the runner does with a stage: ``skip``, ``run``, ``resume``, ``redo`` or ``adopt``."""

    action: str
    reason: str


def file_identity(path: str | os.PathLike) -> dict[str, Any]:
    """What identifies an input: size and SHA-256 (small files) or size and mtime (large ones).

    A folder is identified by the identities of the files in it (by relative path).
    """
    path = Path(path)
    if path.is_dir():
        return {"files": {str(p.relative_to(path)): file_identity(p) for p in sorted(path.rglob("*")) if p.is_file()}}
    if not path.exists():
        return {"missing": True}
    stat = path.stat()
    if stat.st_size < HASH_LIMIT:
        return {"size": stat.st_size, "sha256": file_sha256(path)}
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def digest(fingerprint: dict[str, Any]) -> str:
    """A short hash of a fingerprint (stable across runs: keys sorted)."""
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two fingerprints, config values first."""
    changes = []
    old_settings, new_settings = old.get("settings", {}), new.get("settings", {})
    for key in sorted(set(old_settings) | set(new_settings)):
        if key not in old_settings:
            changes.append(f"{key} added ({_short(new_settings[key])})")
        elif key not in new_settings:
            changes.append(f"{key} removed (was {_short(old_settings[key])})")
        elif old_settings[key] != new_settings[key]:
            changes.append(f"{key} {_short(old_settings[key])} -> {_short(new_settings[key])}")
    old_inputs, new_inputs = old.get("inputs", {}), new.get("inputs", {})
    for path in sorted(set(old_inputs) | set(new_inputs)):
        if old_inputs.get(path) != new_inputs.get(path):
            what = "added" if path not in old_inputs else "no longer read" if path not in new_inputs else "changed"
            changes.append(f"input {path} {what}")
    if old.get("version") != new.get("version"):
        changes.append(f"chromtransfer {old.get('version')} -> {new.get('version')}")
    old_depends, new_depends = old.get("depends", {}), new.get("depends", {})
    added = [name for name in new_depends if name not in old_depends]
    redone = [name for name in new_depends if name in old_depends and old_depends[name] != new_depends[name]]
    for names, what in ((added, "new"), (redone, "redone")):
        if names:
            changes.append(f"depends on {', '.join(names)} ({what})")
    return changes


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


class StageRunner:
    """Runs :class:`Stage` objects in order under ``out``; see the module docstring."""

    def __init__(self, out: str | Path, echo: Callable[[str], None] = print, dry_run: bool = False,
                 given: set[str] | None = None):
        self.out = Path(out)
        #: dotted keys the config sets itself (``None``: unknown, every added key is a change)
        self.given = given
        #: stage -> (digest recorded, digest now) of the stages kept under a newer fingerprint
        self.carried: dict[str, tuple[str, str]] = {}
        self.marker_dir = self.out / "stages"
        self.echo = echo
        self.dry_run = dry_run
        self.digests: dict[str, str] = {}
        self.decisions: dict[str, Decision] = {}
        if not dry_run:
            self.marker_dir.mkdir(parents=True, exist_ok=True)

    def marker(self, name: str) -> Path:
        return self.marker_dir / f"{name.replace('/', '_')}.json"

    def _read_marker(self, name: str) -> dict[str, Any] | None:
        path = self.marker(name)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return {"status": "damaged"}

    def is_complete(self, name: str) -> bool:
        return (self._read_marker(name) or {}).get("status") == "complete"

    def result(self, name: str) -> dict[str, Any]:
        return (self._read_marker(name) or {}).get("result", {})

    def fingerprint(self, stage: Stage) -> dict[str, Any]:
        """What determines ``stage``'s result (see the module docstring)."""
        return {"version": package_version(),
                "settings": stage.settings,
                "inputs": {str(Path(p)): file_identity(p) for p in stage.inputs},
                "depends": {name: self.digests.get(name) for name in stage.depends}}

    def decide(self, stage: Stage, fingerprint: dict[str, Any]) -> Decision:
        """Whether ``stage`` is skipped, run, resumed or redone, and why."""
        marker = self._read_marker(stage.name)
        if marker is None:
            return Decision("run", "")
        if marker.get("status") == "damaged":
            return Decision("redo", "its marker is damaged")
        recorded = marker.get("fingerprint")
        if recorded is None:
            if marker.get("status") == "complete":
                return Decision("adopt", "complete (recorded before fingerprints; kept)")
            return Decision("redo", "no fingerprint recorded")
        if digest(recorded) == digest(fingerprint):
            if marker.get("status") == "complete":
                return Decision("skip", "complete")
            return Decision("resume", "resuming (stopped midway; same settings and inputs)")
        carried, new_keys = self._carry_forward(recorded, fingerprint)
        if digest(carried) == digest(fingerprint):
            self.carried[stage.name] = (digest(recorded), digest(fingerprint))
            kept = [name for name in recorded.get("depends", {}) if name in self.carried]
            why = "; ".join(
                ([f"{', '.join(new_keys)} {'is' if len(new_keys) == 1 else 'are'} new, at the default"] if new_keys else [])
                + ([f"reads {', '.join(kept)}, kept"] if kept else []))
            if marker.get("status") == "complete":
                return Decision("adopt", f"complete (kept: {why})")
            return Decision("resume", f"resuming (stopped midway; {why})")
        changes = fingerprint_changes(recorded, fingerprint) or ["its fingerprint changed"]
        more = len(changes) - SHOWN_REASONS
        return Decision("redo", "; ".join(changes[:SHOWN_REASONS]) + (f"; and {more} more" if more > 0 else ""))

    def _carry_forward(self, recorded: dict[str, Any], fingerprint: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """``recorded`` as this version would write it for the same work, and the keys it gained.

        Settings keys the current fingerprint has, the recorded one lacks and the config does not
        set take their current value (see the module docstring); a dependency kept under a newer
        fingerprint (:attr:`carried`) counts with its new digest."""
        old_settings, new_settings = recorded.get("settings", {}), fingerprint.get("settings", {})
        new_keys = [] if self.given is None else sorted(
            k for k in new_settings if k not in old_settings and k not in self.given)
        depends = {name: self.carried[name][1] if name in self.carried and value == self.carried[name][0] else value
                   for name, value in recorded.get("depends", {}).items()}
        settings = {**old_settings, **{k: new_settings[k] for k in new_keys}}
        return {**recorded, "settings": settings, "depends": depends}, new_keys

    def run(self, stage: Stage) -> dict[str, Any]:
        """Run ``stage`` unless it is up to date; returns its result (``{}`` in a dry run)."""
        fingerprint = self.fingerprint(stage)
        self.digests[stage.name] = digest(fingerprint)
        decision = self.decide(stage, fingerprint)
        self.decisions[stage.name] = decision
        if decision.action in ("skip", "adopt"):
            self.echo(f"[skip] {stage.name}: {decision.reason}")
            if decision.action == "adopt" and not self.dry_run:
                marker = self._read_marker(stage.name)
                write_json(self.marker(stage.name), {**marker, "fingerprint": fingerprint})
            return self.result(stage.name)
        label = "[redo]" if decision.action == "redo" else "[run ]"
        text = decision.reason or stage.description
        if self.dry_run and decision.action == "run":
            text = f"{text} (not run yet)".lstrip()
        self.echo(f"{label} {stage.name}{': ' + text if text else ''}")
        if self.dry_run:
            return self.result(stage.name)
        if decision.action == "redo":
            self._remove_outputs(stage)
        write_json(self.marker(stage.name), {"stage": stage.name, "status": "running", "fingerprint": fingerprint})
        started = time.perf_counter()
        result = stage.run() or {}
        seconds = time.perf_counter() - started
        write_json(self.marker(stage.name), {"stage": stage.name, "status": "complete", "seconds": round(seconds, 3),
                                             "fingerprint": fingerprint, "result": result})
        self.echo(f"[done] {stage.name} in {seconds:.1f} s")
        return result

    def _remove_outputs(self, stage: Stage) -> None:
        """Remove a redone stage's own outputs (only paths inside the study folder)."""
        root = self.out.resolve()
        for output in stage.outputs:
            path = Path(output).resolve()
            if path == root or root not in path.parents:
                raise ValueError(f"stage {stage.name}: output {path} is not inside the study folder {root}")
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def timings(self) -> dict[str, float]:
        """Seconds per completed stage, in the order the markers were written."""
        if not self.marker_dir.exists():
            return {}
        markers = sorted(self.marker_dir.glob("*.json"), key=lambda p: p.stat().st_mtime)
        documents = [json.loads(p.read_text()) for p in markers]
        return {d["stage"]: d["seconds"] for d in documents if d.get("status") == "complete" and "seconds" in d}
