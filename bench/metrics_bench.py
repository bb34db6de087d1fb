"""The cost of the metrics on one call's path, measured in process: ``Telemetry.started`` + ``ended``.

With METRICS on in gunicorn's multiprocess mode (every update a write to a memory-mapped file),
in single-process mode, and off (the no-op); CPU time (process_time), best of several repeats, so
that a busy shared host shows through as little as possible. ``python bench/metrics_bench.py``
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CALLS, REPEATS = 20_000, 7

CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from app.services.audit.records import AttemptRecord, Outcome
from app.services.telemetry.calls import Telemetry
from app.services.telemetry.labels import ModelNames

metrics = None
if {on!r}:
    from app.services.telemetry.metrics import Metrics
    metrics = Metrics()
telemetry = Telemetry(metrics=metrics, names=ModelNames(None))
telemetry.names._known = {{"lm-studio": frozenset({{"qwen3"}})}}
telemetry.names._next = float("inf")
attempt = AttemptRecord(number=1, provider="lm-studio", model="qwen3", started_at=0, duration_ms=12, status_code=200)
outcome = Outcome(status="ok", status_code=200, prompt_tokens=25, completion_tokens=40, total_tokens=65,
                  ttft_ms=80, provider="lm-studio", attempts=[attempt])
best = float("inf")
for _ in range({repeats}):
    started = time.process_time()
    for _ in range({calls}):
        telemetry.started("/v1/chat/completions")
        telemetry.ended(request_id="r", session_id="s", path="/v1/chat/completions", provider="lm-studio",
                        model="qwen3", outcome=outcome, duration_s=0.5, stream=True)
    best = min(best, (time.process_time() - started) / {calls})
print(best * 1e6)
"""


def per_call_us(*, on: bool, multiprocess: bool) -> float:
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    with tempfile.TemporaryDirectory() as directory:
        if multiprocess:
            env["PROMETHEUS_MULTIPROC_DIR"] = directory
        script = CHILD.format(root=str(ROOT), on=on, calls=CALLS, repeats=REPEATS)
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    cells = {
        "METRICS=false (no-op)": per_call_us(on=False, multiprocess=False),
        "METRICS=true, single process": per_call_us(on=True, multiprocess=False),
        "METRICS=true, multiprocess (gunicorn)": per_call_us(on=True, multiprocess=True),
    }
    print(f"| metrics | CPU us per call (started + ended, best of {REPEATS} x {CALLS:,}) |")
    print("|---|---|")
    for name, value in cells.items():
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
