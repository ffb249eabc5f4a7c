"""The job file: every key known, every value checked before any model is loaded (a bad job writes nothing)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from typing import Any, Optional

RECIPES = ("rows", "embeddings", "lora", "full")
DEVICES = ("auto", "cpu", "cuda", "mps")
SCHEDULES = ("cosine", "linear", "constant")
SAVE_DTYPES = ("keep", "float32", "bfloat16", "float16")


class JobError(Exception):
    """A bad job: `key` names the job key (the launcher maps it to its flag)."""

    def __init__(self, key: Optional[str], message: str, code: str = "BAD_JOB"):
        super().__init__(message)
        self.key = key
        self.code = code


@dataclass
class Job:
    model: str
    out: str
    corpus: list[str]
    work_dir: str
    recipe: str = "rows"
    original: Optional[str] = None
    # explicit new-token ids (default: the ids of model tokens absent from the original's vocabulary)
    new_ids: Optional[list[int]] = None
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 4
    seq_len: int = 256
    epochs: float = 1.0
    max_tokens: Optional[int] = None
    max_steps: Optional[int] = None
    corpus_bytes: Optional[int] = None
    warmup_steps: int = 0
    schedule: str = "cosine"
    seed: int = 0
    threads: Optional[int] = None
    device: str = "auto"
    resume: bool = False
    checkpoint_seconds: float = 300.0
    checkpoint_steps: Optional[int] = None
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    keep_adapter: bool = True
    save_dtype: str = "keep"
    log_every: int = 1
    # testing aid: behave as if SIGINT arrived after this many steps (checkpoint, exit 130)
    stop_after_steps: Optional[int] = None


def _check_int(key: str, v: Any, lo: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise JobError(key, f"expected an integer >= {lo}, got {v!r}")


def _check_num(key: str, v: Any, lo: float, strict: bool = False) -> None:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or (v <= lo if strict else v < lo):
        raise JobError(key, f"expected a number {'>' if strict else '>='} {lo}, got {v!r}")


def parse_job(data: dict[str, Any]) -> Job:
    if not isinstance(data, dict):
        raise JobError(None, "the job must be a JSON object")
    known = {f.name for f in fields(Job)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise JobError(unknown[0], f"unknown job key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for req in ("model", "out", "corpus", "work_dir"):
        if req not in data:
            raise JobError(req, "missing")
    if isinstance(data["corpus"], str):
        data = {**data, "corpus": [data["corpus"]]}
    job = Job(**data)
    if job.recipe not in RECIPES:
        raise JobError("recipe", f"expected one of {', '.join(RECIPES)}, got {job.recipe!r}")
    if job.device not in DEVICES:
        raise JobError("device", f"expected one of {', '.join(DEVICES)}, got {job.device!r}")
    if job.schedule not in SCHEDULES:
        raise JobError("schedule", f"expected one of {', '.join(SCHEDULES)}, got {job.schedule!r}")
    if job.save_dtype not in SAVE_DTYPES:
        raise JobError("save_dtype", f"expected one of {', '.join(SAVE_DTYPES)}, got {job.save_dtype!r}")
    _check_num("lr", job.lr, 0.0, strict=True)
    _check_num("weight_decay", job.weight_decay, 0.0)
    _check_int("batch_size", job.batch_size, 1)
    _check_int("seq_len", job.seq_len, 2)
    _check_num("epochs", job.epochs, 0.0, strict=True)
    _check_int("warmup_steps", job.warmup_steps, 0)
    _check_int("seed", job.seed, 0)
    _check_int("lora_r", job.lora_r, 1)
    _check_int("log_every", job.log_every, 1)
    _check_num("checkpoint_seconds", job.checkpoint_seconds, 0.0, strict=True)
    for k in ("max_tokens", "max_steps", "corpus_bytes", "threads", "checkpoint_steps", "stop_after_steps"):
        if getattr(job, k) is not None:
            _check_int(k, getattr(job, k), 1)
    if not job.corpus or not all(isinstance(c, str) for c in job.corpus):
        raise JobError("corpus", "expected one or more file paths")
    for c in job.corpus:
        if not os.path.isfile(c):
            raise JobError("corpus", f"{c}: no such file")
    for k in ("model",) + (("original",) if job.original else ()):
        d = getattr(job, k)
        if not os.path.isfile(os.path.join(d, "config.json")):
            raise JobError(k, f"{d}: not a model directory (no config.json)")
    if job.recipe in ("rows", "lora") and job.original is None and job.new_ids is None:
        raise JobError("original", f"recipe {job.recipe} trains the new tokens' rows: give the original model (or new_ids)")
    if job.weight_decay > 0 and job.recipe == "rows":
        # decoupled weight decay would shrink the old rows too; they must stay bit-identical
        raise JobError("weight_decay", "the rows recipe trains only the new rows; weight decay would change the old ones (use 0)")
    return job


def read_job(path: str) -> Job:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise JobError(None, f"{path}: cannot read the job ({e})")
    try:
        return parse_job(data)
    except TypeError as e:
        raise JobError(None, str(e))
