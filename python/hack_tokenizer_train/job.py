"""The job file: every key known, every value checked before any model is loaded (a bad job writes nothing).

A job trains one stage (the stage keys at the top level) or several (`stages`: a list of objects with the stage
keys), one after the other on the same in-memory model, each with its own recipe, optimizer and schedule.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from typing import Any, Optional

RECIPES = ("rows", "embeddings", "lora", "full")
DEVICES = ("auto", "cpu", "cuda", "mps")
SCHEDULES = ("cosine", "linear", "constant")
SAVE_DTYPES = ("keep", "float32", "bfloat16", "float16")
# ce: next-token cross-entropy; distill / alm: matched against the original model (see objectives.py)
OBJECTIVES = ("ce", "distill", "alm")


# The keys a stage sets (at the top level for a one-stage job, in each `stages` item otherwise).
STAGE_KEYS = ("recipe", "lr", "weight_decay", "batch_size", "grad_accum", "seq_len", "epochs", "max_tokens", "max_steps",
              "warmup_steps", "schedule", "replay_ratio", "lora_r", "lora_alpha", "lora_dropout", "lora_targets", "objective")


class JobError(Exception):
    """A bad job: `key` names the job key (the launcher maps it to its flag)."""

    def __init__(self, key: Optional[str], message: str, code: str = "BAD_JOB"):
        super().__init__(message)
        self.key = key
        self.code = code


@dataclass
class Stage:
    recipe: str = "rows"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 4
    # micro-batches of batch_size windows per optimizer step (their mean loss is what one step minimizes)
    grad_accum: int = 1
    seq_len: int = 256
    epochs: float = 1.0
    max_tokens: Optional[int] = None
    max_steps: Optional[int] = None
    warmup_steps: int = 0
    schedule: str = "cosine"
    # replay windows per corpus window (0: none); default: the job's replay_ratio when it has a replay file
    replay_ratio: Optional[float] = None
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    objective: str = "ce"


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
    grad_accum: int = 1
    seq_len: int = 256
    epochs: float = 1.0
    max_tokens: Optional[int] = None
    max_steps: Optional[int] = None
    corpus_bytes: Optional[int] = None
    warmup_steps: int = 0
    schedule: str = "cosine"
    replay_ratio: Optional[float] = None
    # several stages (objects with the STAGE_KEYS); when given, those keys are not allowed at the top level
    stages: Optional[list[dict[str, Any]]] = None
    # a text file mixed into the training windows (the launcher samples `--replay self` into one)
    replay: Optional[str] = None
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
    objective: str = "ce"
    keep_adapter: bool = True
    save_dtype: str = "keep"
    log_every: int = 1
    # held-out texts (a JSON list of {name, file, bytes, ids}: heldout.py) measured in bits/byte before training,
    # every eval_every training tokens (replay included) and at the end of every stage
    heldout: Optional[str] = None
    eval_every: Optional[int] = None
    # testing aid: behave as if SIGINT arrived after this many steps (checkpoint, exit 130)
    stop_after_steps: Optional[int] = None
    # the checked stages (from `stages`, or the one stage of the top-level keys)
    plan: list[Stage] = field(default_factory=list, init=False)


def _check_int(key: str, v: Any, lo: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise JobError(key, f"expected an integer >= {lo}, got {v!r}")


def _check_num(key: str, v: Any, lo: float, strict: bool = False) -> None:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or (v <= lo if strict else v < lo):
        raise JobError(key, f"expected a number {'>' if strict else '>='} {lo}, got {v!r}")


def _check_stage(st: Stage, where: str, job: "Job") -> None:
    """Every rule of one stage; `where` prefixes the key in errors ("" for a one-stage job, "stages[1]." otherwise)."""
    k = lambda name: f"{where}{name}"
    if st.recipe not in RECIPES:
        raise JobError(k("recipe"), f"expected one of {', '.join(RECIPES)}, got {st.recipe!r}")
    if st.schedule not in SCHEDULES:
        raise JobError(k("schedule"), f"expected one of {', '.join(SCHEDULES)}, got {st.schedule!r}")
    _check_num(k("lr"), st.lr, 0.0, strict=True)
    _check_num(k("weight_decay"), st.weight_decay, 0.0)
    _check_int(k("batch_size"), st.batch_size, 1)
    _check_int(k("grad_accum"), st.grad_accum, 1)
    _check_int(k("seq_len"), st.seq_len, 2)
    _check_num(k("epochs"), st.epochs, 0.0, strict=True)
    _check_int(k("warmup_steps"), st.warmup_steps, 0)
    _check_int(k("lora_r"), st.lora_r, 1)
    _check_num(k("lora_alpha"), st.lora_alpha, 0.0, strict=True)
    _check_num(k("lora_dropout"), st.lora_dropout, 0.0)
    if not isinstance(st.lora_targets, list) or not st.lora_targets or not all(isinstance(t, str) and t for t in st.lora_targets):
        raise JobError(k("lora_targets"), f"expected a list of module names, got {st.lora_targets!r}")
    for name in ("max_tokens", "max_steps"):
        if getattr(st, name) is not None:
            _check_int(k(name), getattr(st, name), 1)
    if st.replay_ratio is None:
        st.replay_ratio = (job.replay_ratio if job.replay_ratio is not None else 0.25) if job.replay else 0.0
    _check_num(k("replay_ratio"), st.replay_ratio, 0.0)
    if st.replay_ratio > 0 and not job.replay:
        raise JobError(k("replay_ratio"), "replay windows asked for, but the job has no replay file")
    if st.recipe in ("rows", "lora") and job.original is None and job.new_ids is None:
        raise JobError("original", f"recipe {st.recipe} trains the new tokens' rows: give the original model (or new_ids)")
    if st.weight_decay > 0 and st.recipe == "rows":
        # decoupled weight decay would shrink the old rows too; they must stay bit-identical
        raise JobError(k("weight_decay"), "the rows recipe trains only the new rows; weight decay would change the old ones (use 0)")
    if st.objective not in OBJECTIVES:
        raise JobError(k("objective"), f"expected one of {', '.join(OBJECTIVES)}, got {st.objective!r}")
    if st.objective != "ce":
        # both compare the extended model with the original on the same text: only the new rows may move
        if st.recipe != "rows":
            raise JobError(k("objective"), f"objective {st.objective} trains only the new rows: use recipe rows, not {st.recipe}")
        if job.original is None:
            raise JobError("original", f"objective {st.objective} needs the original model as its teacher")
    per_step = st.batch_size * st.grad_accum * st.seq_len
    if st.max_tokens is not None and st.max_tokens < per_step:
        # known from the numbers alone: refused before the corpus is read
        raise JobError(k("max_tokens"), f"the budget of {st.max_tokens} tokens is smaller than one batch "
                       f"({st.batch_size} x {st.grad_accum} x {st.seq_len} = {per_step} tokens)", "BUDGET")


def parse_job(data: dict[str, Any]) -> Job:
    if not isinstance(data, dict):
        raise JobError(None, "the job must be a JSON object")
    known = {f.name for f in fields(Job) if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise JobError(unknown[0], f"unknown job key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for req in ("model", "out", "corpus", "work_dir"):
        if req not in data:
            raise JobError(req, "missing")
    if isinstance(data["corpus"], str):
        data = {**data, "corpus": [data["corpus"]]}
    job = Job(**data)
    if job.device not in DEVICES:
        raise JobError("device", f"expected one of {', '.join(DEVICES)}, got {job.device!r}")
    if job.save_dtype not in SAVE_DTYPES:
        raise JobError("save_dtype", f"expected one of {', '.join(SAVE_DTYPES)}, got {job.save_dtype!r}")
    _check_int("seed", job.seed, 0)
    _check_int("log_every", job.log_every, 1)
    _check_num("checkpoint_seconds", job.checkpoint_seconds, 0.0, strict=True)
    for k in ("corpus_bytes", "threads", "checkpoint_steps", "stop_after_steps", "eval_every"):
        if getattr(job, k) is not None:
            _check_int(k, getattr(job, k), 1)
    if job.replay_ratio is not None:
        _check_num("replay_ratio", job.replay_ratio, 0.0)
    if not job.corpus or not all(isinstance(c, str) for c in job.corpus):
        raise JobError("corpus", "expected one or more file paths")
    for c in job.corpus:
        if not os.path.isfile(c):
            raise JobError("corpus", f"{c}: no such file")
    if job.heldout is not None and (not isinstance(job.heldout, str) or not os.path.isfile(job.heldout)):
        raise JobError("heldout", f"{job.heldout}: no such file")
    if job.eval_every is not None and job.heldout is None:
        raise JobError("eval_every", "held-out evaluation asked for, but the job has no held-out texts")
    if job.replay is not None and (not isinstance(job.replay, str) or not os.path.isfile(job.replay)):
        raise JobError("replay", f"{job.replay}: no such file")
    for k in ("model",) + (("original",) if job.original else ()):
        d = getattr(job, k)
        if not os.path.isfile(os.path.join(d, "config.json")):
            raise JobError(k, f"{d}: not a model directory (no config.json)")
    if job.stages is None:
        job.plan = [Stage(**{k: getattr(job, k) for k in STAGE_KEYS})]
        _check_stage(job.plan[0], "", job)
    else:
        top = sorted(k for k in STAGE_KEYS if k in data and k != "replay_ratio")
        if top:
            raise JobError(top[0], f"{', '.join(top)}: set per stage when the job has stages")
        if not isinstance(job.stages, list) or not job.stages:
            raise JobError("stages", "expected a non-empty list of stage objects")
        for i, raw in enumerate(job.stages):
            if not isinstance(raw, dict):
                raise JobError(f"stages[{i}]", f"expected an object with stage keys, got {raw!r}")
            bad = sorted(set(raw) - set(STAGE_KEYS))
            if bad:
                raise JobError(f"stages[{i}].{bad[0]}", f"unknown stage key(s): {', '.join(bad)} (known: {', '.join(STAGE_KEYS)})")
            st = Stage(**raw)
            _check_stage(st, f"stages[{i}].", job)
            moved = [j for j, p in enumerate(job.plan) if p.recipe != "rows"]
            if st.objective != "ce" and moved:
                # the teacher is the model itself on old ids: only while body and old rows are still the original's
                raise JobError(f"stages[{i}].objective", f"objective {st.objective} compares with the original model, "
                               f"but stages[{moved[0]}] ({job.plan[moved[0]].recipe}) has changed it: put it before any non-rows stage")
            job.plan.append(st)
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
