"""python -m hack_tokenizer_train <job.json> | --check-versions

Progress goes to stdout as JSON lines ({"event": "step" | "checkpoint" | "info" | "phase" | "done" | "error" | "interrupted"});
tracebacks of crashes go to stderr. Exit codes: 0 done, 2 bad job, 130 interrupted (checkpoint written), 1 crash.
"""
from __future__ import annotations

import json
import os
import sys

# stdout carries the JSON lines; the libraries' own progress bars would only clutter stderr
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from . import EXIT_CRASH, EXIT_INTERRUPTED, EXIT_JOB, EXIT_OK, PINNED


def emit(ev: dict) -> None:
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


def rank_emit(ev: dict) -> None:
    """Under `accelerate launch` every process shares the launcher's stdout: rank 0 reports progress, the others
    only their errors (with their rank, so a failing process is named)."""
    from .dist import env_rank, env_world

    rank = env_rank()
    if rank == 0:
        emit(ev)
    elif ev.get("event") == "error":
        emit({**ev, "rank": rank, "message": f"process {rank} of {env_world()}: {ev.get('message')}"})


def check_versions() -> int:
    """One JSON line: each pinned package's installed version (or null), and whether all match."""
    import importlib.metadata as md

    found = {}
    for name in PINNED:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            found[name] = None
    ok = all(v is not None and v.split("+")[0] == PINNED[k] for k, v in found.items())
    emit({"event": "versions", "python": sys.version.split()[0], "pinned": PINNED, "found": found, "ok": ok})
    return EXIT_OK if ok else EXIT_JOB


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check-versions"]:
        return check_versions()
    if len(argv) != 1:
        sys.stderr.write(__doc__)
        return EXIT_JOB
    from .job import JobError, read_job

    emit = rank_emit

    try:
        job = read_job(argv[0])
        from .train import Interrupted, train

        train(job, emit)
        return EXIT_OK
    except JobError as e:
        emit({"event": "error", "code": e.code, "key": e.key, "message": str(e)})
        return EXIT_JOB
    except Interrupted as e:
        emit({"event": "interrupted", "step": e.step})
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        emit({"event": "interrupted", "step": None})
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the launcher shows the message and the stderr tail
        import traceback

        traceback.print_exc()
        emit({"event": "error", "code": "CRASH", "key": None, "message": f"{type(e).__name__}: {e}"})
        return EXIT_CRASH


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
