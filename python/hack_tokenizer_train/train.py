"""The training loop: recipe -> trainable parameters, AdamW + schedule, checkpoints, resume, the output directory."""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import time
from typing import Any, Callable, Optional

import numpy as np
import torch

from .data import sample_index, token_windows
from .job import Job, JobError

Emit = Callable[[dict[str, Any]], None]

WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
NOT_CARRIED = {"config.json", "generation_config.json", "model.safetensors.index.json", "pytorch_model.bin.index.json",
               ".hack-tokenizer-output.json", "tune.json"}


class Interrupted(Exception):
    def __init__(self, step: int):
        super().__init__(f"interrupted at step {step}")
        self.step = step


def new_token_ids(model_dir: str, original_dir: str) -> list[int]:
    """Ids of the model's tokens whose strings the original tokenizer does not have."""
    from tokenizers import Tokenizer

    ext = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json")).get_vocab(with_added_tokens=True)
    orig = Tokenizer.from_file(os.path.join(original_dir, "tokenizer.json")).get_vocab(with_added_tokens=True)
    return sorted(i for t, i in ext.items() if t not in orig)


def pick_device(want: str) -> torch.device:
    if want == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if want == "cuda" and not torch.cuda.is_available():
        raise JobError("device", "cuda asked for, but torch sees no CUDA device on this machine", "NO_DEVICE")
    if want == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise JobError("device", "mps asked for, but torch sees no MPS device on this machine", "NO_DEVICE")
    return torch.device(want)


def job_key(job: Job) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed (the rest, e.g. threads or logging, may change)."""
    keep = ("model", "original", "corpus", "recipe", "new_ids", "lr", "weight_decay", "batch_size", "seq_len", "epochs",
            "max_tokens", "max_steps", "corpus_bytes", "warmup_steps", "schedule", "seed", "lora_r", "lora_alpha",
            "lora_dropout", "lora_targets")
    d = {k: getattr(job, k) for k in keep}
    d["model"] = os.path.abspath(job.model)
    d["original"] = os.path.abspath(job.original) if job.original else None
    d["corpus"] = [os.path.abspath(c) for c in job.corpus]
    return d


def embedding_params(model) -> list[tuple[str, torch.nn.Parameter]]:
    """Input embedding and (when untied) output embedding parameters, each once."""
    out: list[tuple[str, torch.nn.Parameter]] = []
    seen: set[int] = set()
    for name, mod in (("input", model.get_input_embeddings()), ("output", model.get_output_embeddings())):
        if mod is None:
            continue
        p = mod.weight
        if id(p) not in seen:
            seen.add(id(p))
            out.append((name, p))
    return out


def setup_recipe(job: Job, model, new_ids: list[int], emit: Emit):
    """Freeze/unfreeze by recipe; returns (model to train, parameter groups)."""
    for p in model.parameters():
        p.requires_grad_(False)
    if job.recipe == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model, [{"params": [p for p in model.parameters()], "weight_decay": job.weight_decay}]
    if job.recipe == "embeddings":
        ps = [p for _, p in embedding_params(model)]
        for p in ps:
            p.requires_grad_(True)
        return model, [{"params": ps, "weight_decay": job.weight_decay}]
    vocab = model.get_input_embeddings().weight.shape[0]
    bad = [i for i in new_ids if i < 0 or i >= vocab]
    if bad:
        raise JobError("new_ids", f"token id {bad[0]} has no embedding row ({vocab} rows)")
    if not new_ids:
        raise JobError("original", "the model has no token beyond the original's (not an extended model?)")
    if job.recipe == "rows":
        mask = torch.zeros(vocab, 1)
        mask[new_ids] = 1.0
        ps = []
        for _, p in embedding_params(model):
            p.requires_grad_(True)
            m = mask.to(p.device, p.dtype)
            # old rows get an exactly-zero gradient; with no weight decay AdamW's update of them is exactly zero
            p.register_hook(lambda g, m=m: g * m)
            ps.append(p)
        return model, [{"params": ps, "weight_decay": 0.0}]
    # lora: adapters on attention/MLP projections, plus the new tokens' rows (peft's trainable tokens)
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = [t for t in job.lora_targets if t in names]
    if not targets:
        raise JobError("lora_targets", f"none of {', '.join(job.lora_targets)} is a module of this {type(model).__name__}", "LORA_TARGETS")
    token_targets: dict[str, list[int]] = {"embed_tokens": new_ids}
    if not model.config.tie_word_embeddings and model.get_output_embeddings() is not None:
        token_targets["lm_head"] = new_ids
    cfg = LoraConfig(r=job.lora_r, lora_alpha=job.lora_alpha, lora_dropout=job.lora_dropout, target_modules=targets,
                     trainable_token_indices=token_targets, task_type="CAUSAL_LM")
    pm = get_peft_model(model, cfg)
    ps = [p for p in pm.parameters() if p.requires_grad]
    return pm, [{"params": ps, "weight_decay": job.weight_decay}]


def lr_lambda(job: Job, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if job.warmup_steps > 0 and step < job.warmup_steps:
            return (step + 1) / job.warmup_steps
        if job.schedule == "constant":
            return 1.0
        rest = max(1, total - job.warmup_steps)
        t = min(1.0, (step - job.warmup_steps) / rest)
        if job.schedule == "linear":
            return max(0.0, 1.0 - t)
        return 0.5 * (1.0 + math.cos(math.pi * t))
    return f


def _atomic_torch_save(obj: Any, path: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def checkpoint_path(job: Job) -> str:
    return os.path.join(job.work_dir, "checkpoint.pt")


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def write_checkpoint(job: Job, model, opt, sched, step: int, losses: list[float], seconds: float) -> None:
    os.makedirs(job.work_dir, exist_ok=True)
    _atomic_torch_save({
        "key": job_key(job), "step": step, "losses": losses, "seconds": seconds,
        "params": trainable_state(model), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
    }, checkpoint_path(job))


def read_checkpoint(job: Job) -> Optional[dict[str, Any]]:
    p = checkpoint_path(job)
    if not os.path.isfile(p):
        return None
    ck = torch.load(p, map_location="cpu", weights_only=False)
    if ck.get("key") != job_key(job):
        diff = sorted(k for k in job_key(job) if ck.get("key", {}).get(k) != job_key(job)[k])
        raise JobError("resume", f"the checkpoint in {job.work_dir} was made by a different job (differs in: {', '.join(diff)}); use another work directory or the same settings", "RESUME_MISMATCH")
    return ck


def save_dtype(job: Job, model_dir: str) -> torch.dtype:
    if job.save_dtype != "keep":
        return getattr(torch, job.save_dtype)
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    name = cfg.get("dtype") or cfg.get("torch_dtype") or "float32"
    return getattr(torch, name, torch.float32)


def carry_side_files(src: str, dst: str) -> list[str]:
    """Tokenizer and other side files of the input model (not its weights or config: save_pretrained writes those)."""
    carried = []
    for name in sorted(os.listdir(src)):
        p = os.path.join(src, name)
        if not os.path.isfile(p) or name in NOT_CARRIED or name.endswith(WEIGHT_FILES) or os.path.exists(os.path.join(dst, name)):
            continue
        shutil.copy2(p, os.path.join(dst, name))
        carried.append(name)
    return carried


def write_output(job: Job, model, summary: dict[str, Any], emit: Emit) -> None:
    """The model directory, written beside --out and renamed into place (an existing --out must be empty)."""
    out = os.path.abspath(job.out)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise JobError("out", f"{job.out} exists and is not empty", "OUT_EXISTS")
    tmp = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        dtype = save_dtype(job, job.model)
        if job.recipe == "lora":
            if job.keep_adapter:
                model.save_pretrained(os.path.join(tmp, "adapter"))
            model = model.merge_and_unload()
        model = model.to("cpu", dtype)
        model.save_pretrained(tmp)
        summary["carried"] = carry_side_files(job.model, tmp)
        with open(os.path.join(tmp, "tune.json"), "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
        if os.path.isdir(out):
            os.rmdir(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def train(job: Job, emit: Emit) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    t0 = time.time()
    if job.threads:
        torch.set_num_threads(job.threads)
    device = pick_device(job.device)
    # determinism: same seed, same threads, same CPU -> same weights (resumed or not)
    torch.manual_seed(job.seed)
    random.seed(job.seed)
    np.random.seed(job.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    new_ids = job.new_ids if job.new_ids is not None else (new_token_ids(job.model, job.original) if job.original else [])
    windows, corpus_info = token_windows(job.model, job.corpus, job.seq_len, job.corpus_bytes)
    n = windows.shape[0]
    total = math.ceil(n * job.epochs / job.batch_size)
    if job.max_tokens is not None:
        total = min(total, job.max_tokens // (job.batch_size * job.seq_len))
    if job.max_steps is not None:
        total = min(total, job.max_steps)
    if total < 1:
        raise JobError("max_tokens", f"the budget is smaller than one batch ({job.batch_size} x {job.seq_len} tokens)", "BUDGET")
    emit({"event": "info", "message": f"{corpus_info['windows']} windows of {job.seq_len} tokens from {corpus_info['bytes']} bytes; "
          f"{total} steps of {job.batch_size} windows; recipe {job.recipe}; device {device}; {torch.get_num_threads()} threads"})

    model = AutoModelForCausalLM.from_pretrained(job.model, dtype=torch.float32, attn_implementation="eager" if device.type == "cpu" else None)
    model.config.use_cache = False
    model.to(device)
    model, groups = setup_recipe(job, model, new_ids, emit)
    trainable = sum(p.numel() for g in groups for p in g["params"])
    if job.recipe == "rows":  # the masked matrices hold only len(new_ids) trained rows each
        trainable = sum(len(new_ids) * p.shape[1] for g in groups for p in g["params"])
    emit({"event": "info", "message": f"{trainable} trainable parameters" + (f", {len(new_ids)} new tokens" if new_ids else "")})
    opt = torch.optim.AdamW(groups, lr=job.lr, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(job, total))
    start, losses, prior_seconds = 0, [], 0.0
    if job.resume:
        ck = read_checkpoint(job)
        if ck is not None:
            named = dict(model.named_parameters())
            with torch.no_grad():
                for k, v in ck["params"].items():
                    named[k].copy_(v.to(device))
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            torch.set_rng_state(ck["rng"]["torch"])
            random.setstate(ck["rng"]["python"])
            np.random.set_state(ck["rng"]["numpy"])
            if ck["rng"].get("cuda") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(ck["rng"]["cuda"])
            start, losses, prior_seconds = ck["step"], list(ck["losses"]), ck["seconds"]
            emit({"event": "info", "message": f"resumed from {checkpoint_path(job)} at step {start}/{total}"})
    stop = {"now": False}

    def on_sigint(signum, frame):
        stop["now"] = True

    old_handler = signal.signal(signal.SIGINT, on_sigint) if _main_thread() else None
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    model.train()
    perm_cache: dict = {}
    last_ck = time.time()
    t_train = time.time()
    tokens_since, t_since = 0, time.time()
    step = start
    try:
        while step < total:
            if stop["now"] or (job.stop_after_steps is not None and step - start >= job.stop_after_steps):
                write_checkpoint(job, model, opt, sched, step, losses, prior_seconds + time.time() - t_train)
                emit({"event": "checkpoint", "step": step, "path": checkpoint_path(job)})
                raise Interrupted(step)
            idx = [sample_index(job.seed, n, step * job.batch_size + j, perm_cache) for j in range(job.batch_size)]
            batch = windows[idx].to(device)
            if autocast is not None:
                with autocast:
                    loss = model(input_ids=batch, labels=batch).loss
            else:
                loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise JobError("lr", f"the loss became {lv} at step {step}; lower the learning rate", "DIVERGED")
            losses.append(lv)
            tokens_since += batch.numel()
            if step % job.log_every == 0 or step == total:
                dt = max(1e-9, time.time() - t_since)
                emit({"event": "step", "step": step, "total": total, "loss": lv, "lr": sched.get_last_lr()[0],
                      "tokens_per_s": tokens_since / dt})
                tokens_since, t_since = 0, time.time()
            due = (job.checkpoint_steps is not None and step % job.checkpoint_steps == 0) or time.time() - last_ck >= job.checkpoint_seconds
            if due and step < total:
                write_checkpoint(job, model, opt, sched, step, losses, prior_seconds + time.time() - t_train)
                emit({"event": "checkpoint", "step": step, "path": checkpoint_path(job)})
                last_ck = time.time()
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
    train_seconds = prior_seconds + time.time() - t_train
    trained_tokens = (total - start) * job.batch_size * job.seq_len
    summary = {
        "engine": "torch", "written_by": "hack-tokenizer tune", "job": job_key(job), "device": str(device),
        "threads": torch.get_num_threads(), "new_tokens": len(new_ids), "trainable_parameters": trainable,
        "corpus": corpus_info, "steps": total, "resumed_at": start or None, "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None, "train_seconds": train_seconds,
        "tokens": total * job.batch_size * job.seq_len,
        "tokens_per_s": trained_tokens / max(1e-9, time.time() - t_train),
        "versions": {"torch": torch.__version__},
    }
    model.eval()
    emit({"event": "phase", "phase": "writing", "out": job.out})
    write_output(job, model, summary, emit)
    summary["seconds"] = time.time() - t0
    emit({"event": "done", "out": job.out, "steps": total, "first_loss": summary["first_loss"], "last_loss": summary["last_loss"],
          "tokens_per_s": summary["tokens_per_s"], "seconds": summary["seconds"]})
    return summary


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
