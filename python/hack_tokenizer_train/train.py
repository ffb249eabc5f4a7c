"""The training loop: stages (recipe -> trainable parameters, AdamW + schedule each), checkpoints, resume, the output directory.

Stages run one after the other on the same in-memory model; each sets up its recipe, optimizer and schedule afresh
(an optimizer's moments belong to the parameters and learning rate they were made for). A checkpoint records the
stage it was taken in; from the second stage on it holds every parameter, since earlier stages changed weights that
the current one does not train.
"""
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

from dataclasses import asdict

from .data import cut_windows, replay_fraction, sample_index, token_ids, visit
from .dist import Dist
from .heldout import bits_per_byte, load_heldout
from .job import Job, JobError, Stage
from .objectives import Objective, ce_loss, new_token_pieces

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


def job_key(job: Job, processes: int = 1) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed (the rest, e.g. threads or logging, may change). Several
    processes (each with its own batch_size windows of a step) are a different job from one."""
    return {**({"processes": processes} if processes > 1 else {}),
        "model": os.path.abspath(job.model), "original": os.path.abspath(job.original) if job.original else None,
        "corpus": [os.path.abspath(c) for c in job.corpus], "new_ids": job.new_ids, "corpus_bytes": job.corpus_bytes,
        "seed": job.seed, "replay": os.path.abspath(job.replay) if job.replay else None,
        "stages": [asdict(st) for st in job.plan],
    }


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


def setup_recipe(job: Stage, model, new_ids: list[int], emit: Emit):
    """Freeze/unfreeze by the stage's recipe; returns (model to train, parameter groups, gradient hooks to remove
    when the stage ends: a later stage must not inherit the rows recipe's mask)."""
    for p in model.parameters():
        p.requires_grad_(False)
    if job.recipe == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model, [{"params": [p for p in model.parameters()], "weight_decay": job.weight_decay}], []
    if job.recipe == "embeddings":
        ps = [p for _, p in embedding_params(model)]
        for p in ps:
            p.requires_grad_(True)
        return model, [{"params": ps, "weight_decay": job.weight_decay}], []
    vocab = model.get_input_embeddings().weight.shape[0]
    bad = [i for i in new_ids if i < 0 or i >= vocab]
    if bad:
        raise JobError("new_ids", f"token id {bad[0]} has no embedding row ({vocab} rows)")
    if not new_ids:
        raise JobError("original", "the model has no token beyond the original's (not an extended model?)")
    if job.recipe == "rows":
        mask = torch.zeros(vocab, 1)
        mask[new_ids] = 1.0
        ps, hooks = [], []
        for _, p in embedding_params(model):
            p.requires_grad_(True)
            m = mask.to(p.device, p.dtype)
            # old rows get an exactly-zero gradient; with no weight decay AdamW's update of them is exactly zero
            hooks.append(p.register_hook(lambda g, m=m: g * m))
            ps.append(p)
        return model, [{"params": ps, "weight_decay": 0.0}], hooks
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
    return pm, [{"params": ps, "weight_decay": job.weight_decay}], []


def lr_lambda(job: Stage, total: int) -> Callable[[int], float]:
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


def trainable_state(model, everything: bool) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if everything or p.requires_grad}


def write_checkpoint(job: Job, model, opt, sched, stage: int, step: int, losses: list[float], seconds: float, done: list[dict], processes: int = 1,
                     evals: Optional[list[dict]] = None) -> None:
    os.makedirs(job.work_dir, exist_ok=True)
    _atomic_torch_save({
        "key": job_key(job, processes), "stage": stage, "step": step, "losses": losses, "seconds": seconds, "done": done,
        "evals": evals or [],
        # from the second stage on, earlier stages changed weights this one does not train: keep them all
        "params": trainable_state(model, everything=stage > 0), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
    }, checkpoint_path(job))


def read_checkpoint(job: Job, processes: int = 1) -> Optional[dict[str, Any]]:
    p = checkpoint_path(job)
    if not os.path.isfile(p):
        return None
    ck = torch.load(p, map_location="cpu", weights_only=False)
    key = job_key(job, processes)
    if ck.get("key") != key:
        old = ck.get("key", {})
        diff = sorted(k for k in set(key) | set(old) if old.get(k) != key.get(k))
        if diff == ["stages"] and len(old.get("stages", [])) == len(key["stages"]):
            at = (lambda i: f"stages[{i}].") if job.stages is not None else (lambda i: "")
            diff = sorted({f"{at(i)}{k}" for i, (a, b) in enumerate(zip(old["stages"], key["stages"])) for k in b if a.get(k) != b[k]})
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


def write_output(job: Job, model, summary: dict[str, Any], emit: Emit, lora: bool = False) -> None:
    """The model directory, written beside --out and renamed into place (an existing --out must be empty)."""
    out = os.path.abspath(job.out)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise JobError("out", f"{job.out} exists and is not empty", "OUT_EXISTS")
    tmp = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        dtype = save_dtype(job, job.model)
        if lora:
            # the adapter applies to the model the lora stage started from: that is --model only for a one-stage job
            if job.keep_adapter and len(job.plan) == 1:
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


def accumulate(model, micro_batches: list[torch.Tensor], autocast=None, backward=torch.Tensor.backward,
               loss_of: Callable[[Any, torch.Tensor], torch.Tensor] = ce_loss) -> float:
    """Backward over the micro-batches of one optimizer step; returns their mean loss.

    Each loss is divided by their number, so the accumulated gradient is that of their mean: with equal-length
    windows, the gradient of one batch holding all of them.
    """
    total = 0.0
    for batch in micro_batches:
        if autocast is not None:
            with autocast:
                loss = loss_of(model, batch)
        else:
            loss = loss_of(model, batch)
        backward(loss / len(micro_batches))
        total += float(loss.detach()) / len(micro_batches)
    return total


def stage_steps(st: Stage, n: int, processes: int = 1) -> int:
    """Optimizer steps of a stage: `epochs` passes over the corpus windows (replay windows come on top), capped
    by max_tokens (every trained token counts, replay included) and max_steps. A step takes batch_size x
    grad_accum windows on each of the processes."""
    per_step = st.batch_size * st.grad_accum * processes
    frac = replay_fraction(st.replay_ratio or 0.0)
    total = math.ceil(n * st.epochs / (1.0 - frac) / per_step)
    if st.max_tokens is not None:
        total = min(total, st.max_tokens // (per_step * st.seq_len))
    if st.max_steps is not None:
        total = min(total, st.max_steps)
    return total


def train(job: Job, emit: Emit) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    t0 = time.time()
    if job.threads:
        torch.set_num_threads(job.threads)
    # launched by accelerate: one of several processes (its device from the Accelerator); else as always
    dist = Dist.start(job.device)
    device = dist.device if dist.acc is not None else pick_device(job.device)
    world, rank = dist.world, dist.rank
    if dist.acc is not None and job.device != "auto" and device.type != job.device:
        raise JobError("device", f"{job.device} asked for, but accelerate placed this process on {device}", "NO_DEVICE")
    # determinism: same seed, same threads, same CPU -> same weights (resumed or not)
    torch.manual_seed(job.seed)
    random.seed(job.seed)
    np.random.seed(job.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    new_ids = job.new_ids if job.new_ids is not None else (new_token_ids(job.model, job.original) if job.original else [])
    uses_teacher = [st.objective for st in job.plan if st.objective != "ce"]
    if uses_teacher and world > 1:
        raise JobError("objective", f"objective {uses_teacher[0]} runs in one process only (this launch has {world})", "ONE_PROCESS")
    pieces = new_token_pieces(job.model, job.original, new_ids) if uses_teacher else {}
    ids, corpus_info = token_ids(job.model, job.corpus, job.corpus_bytes)
    heldout = load_heldout(job.heldout) if job.heldout else []
    replay_ids, replay_info = (token_ids(job.model, [job.replay], None, "replay") if job.replay else (None, None))
    # every stage's windows and step count before the model is loaded: a stage whose budget is below one batch
    # stops the job before any training
    plans = []
    for i, st in enumerate(job.plan):
        where = f"stages[{i}]." if job.stages is not None else ""
        windows = cut_windows(ids, st.seq_len)
        rwindows = cut_windows(replay_ids, st.seq_len, "replay") if replay_ids is not None and st.replay_ratio > 0 else None
        total = stage_steps(st, windows.shape[0], world)
        if total < 1:
            procs = f" x {world} processes" if world > 1 else ""
            raise JobError(f"{where}max_tokens", f"the budget is smaller than one batch ({st.batch_size} x {st.grad_accum} x {st.seq_len} tokens{procs})", "BUDGET")
        plans.append((windows, rwindows, total))
    corpus_info["windows"] = plans[0][0].shape[0]
    emit({"event": "info", "message": f"{corpus_info['tokens']} tokens from {corpus_info['bytes']} bytes"
          + (f" + replay {replay_info['tokens']} tokens" if replay_info else "") + f"; {len(job.plan)} stage(s): "
          + "; ".join(f"{st.recipe} {total} steps of {st.batch_size}x{st.grad_accum}{f'x{world}' if world > 1 else ''} windows of {st.seq_len}" for st, (_, _, total) in zip(job.plan, plans))
          + f"; device {device}; {torch.get_num_threads()} threads" + (f"; {world} processes ({dist.info()['distributed_type']})" if world > 1 else "")})

    model = AutoModelForCausalLM.from_pretrained(job.model, dtype=torch.float32, attn_implementation="eager" if device.type == "cpu" else None)
    model.config.use_cache = False
    model.to(device)
    ck = read_checkpoint(job, world) if job.resume else None
    done: list[dict[str, Any]] = list(ck["done"]) if ck is not None else []
    evals: list[dict[str, Any]] = list(ck.get("evals", [])) if ck is not None else []
    corpus_bytes_per_token = corpus_info["bytes"] / max(1, corpus_info["tokens"])

    def measure(si: int, step: int, tokens: int, corpus_windows: int, seq_len: int, train_seconds: float) -> float:
        """One point of the held-out curve (rank 0; the others go on and wait at the next all-reduce); its seconds."""
        if not heldout or not dist.main or (evals and evals[-1]["stage"] == si and evals[-1]["step"] == step):
            return 0.0
        t = time.time()
        bpb = {h["name"]: bits_per_byte(model, h["ids"], h["bytes"], device) for h in heldout}
        corpus_tokens = sum(d["corpus_windows"] * d["seq_len"] for d in done) + corpus_windows * seq_len
        ev = {"stage": si, "step": step, "tokens": tokens, "corpus_tokens": corpus_tokens,
              "corpus_bytes": round(corpus_tokens * corpus_bytes_per_token), "train_seconds": train_seconds,
              "bpb": bpb, "seconds": time.time() - t}
        evals.append(ev)
        emit({"event": "eval", **ev})
        return ev["seconds"]
    first_stage = ck["stage"] if ck is not None else 0
    stop = {"now": False}

    def on_sigint(signum, frame):
        stop["now"] = True

    old_handler = signal.signal(signal.SIGINT, on_sigint) if _main_thread() else None
    # mixed precision from an accelerate config is accelerate's (prepare wraps the forward); else bf16 on CUDA as always
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and torch.cuda.is_bf16_supported() and dist.mixed_precision == "no" else None
    steps_here = 0  # steps taken by this process (stop_after_steps counts these)
    trainable_total = 0
    try:
        for si in range(first_stage, len(job.plan)):
            st = job.plan[si]
            windows, rwindows, total = plans[si]
            n, nr = windows.shape[0], (rwindows.shape[0] if rwindows is not None else 0)
            frac = replay_fraction(st.replay_ratio) if rwindows is not None else 0.0
            # stage 0 keeps the one-stage job's data order; later stages get their own
            seed = job.seed + 7_777_777 * si
            model, groups, hooks = setup_recipe(st, model, new_ids, emit)
            trainable = sum(p.numel() for g in groups for p in g["params"])
            if st.recipe == "rows":  # the masked matrices hold only len(new_ids) trained rows each
                trainable = sum(len(new_ids) * p.shape[1] for g in groups for p in g["params"])
            trainable_total = max(trainable_total, trainable)
            label = f"stage {si + 1}/{len(job.plan)}: " if len(job.plan) > 1 else ""
            emit({"event": "info", "message": f"{label}{st.recipe}, lr {st.lr}" + (f", objective {st.objective}" if st.objective != "ce" else "")
                  + f": {trainable} trainable parameters" + (f", {len(new_ids)} new tokens" if new_ids else "")})
            loss_of = Objective(st.objective, model, pieces)
            opt = torch.optim.AdamW(groups, lr=st.lr, betas=(0.9, 0.95), eps=1e-8, foreach=False)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(st, total))
            start, losses, prior_seconds = 0, [], 0.0
            if ck is not None and si == first_stage:
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
                emit({"event": "info", "message": f"resumed from {checkpoint_path(job)} at {label}step {start}/{total}"})
            # several processes: the DDP wrapper runs the forward (and syncs gradients); `model` stays the unwrapped one
            fwd, step_opt = dist.prepare(model, opt)
            model.train()
            perm_cache: dict = {}
            rperm_cache: dict = {}
            last_ck = time.time()
            t_train = time.time()
            tokens_since, t_since = 0, time.time()
            step = start
            per_step = st.batch_size * st.grad_accum * world  # windows of one step, all processes together
            tokens_before = sum(d["tokens"] for d in done)
            seconds_before = sum(d["seconds"] for d in done)
            eval_seconds = 0.0  # held-out evaluation: not training time
            corpus_windows_at = lambda k: k * per_step - math.floor(k * per_step * frac)
            elapsed = lambda: prior_seconds + time.time() - t_train - eval_seconds
            if si == 0 and step == 0:
                eval_seconds += measure(si, 0, 0, 0, st.seq_len, 0.0)
                tokens_since, t_since = 0, time.time()
            while step < total:
                # all processes stop at the same step (one all-reduce of the flag; nothing in one process)
                if dist.any(stop["now"]) or (job.stop_after_steps is not None and steps_here >= job.stop_after_steps):
                    if dist.main:
                        write_checkpoint(job, model, opt, sched, si, step, losses, elapsed(), done, world, evals)
                        emit({"event": "checkpoint", "step": step, "stage": si, "path": checkpoint_path(job)})
                    dist.barrier()
                    raise Interrupted(step)
                micro_batches = []
                for micro in range(st.grad_accum):
                    rows = []
                    for j in range(st.batch_size):
                        # rank r takes the r-th batch_size windows of the micro-batch's batch_size x world
                        is_replay, idx = visit(step * per_step + (micro * world + rank) * st.batch_size + j, frac)
                        if is_replay:
                            rows.append(rwindows[sample_index(seed + 1, nr, idx, rperm_cache)])
                        else:
                            rows.append(windows[sample_index(seed, n, idx, perm_cache)])
                    micro_batches.append(torch.stack(rows).to(device))
                lv = dist.mean(accumulate(fwd, micro_batches, autocast, dist.backward, loss_of))
                tokens_since += per_step * st.seq_len
                step_opt.step()
                sched.step()
                step_opt.zero_grad(set_to_none=True)
                step += 1
                steps_here += 1
                if not math.isfinite(lv):
                    raise JobError("lr", f"the loss became {lv} at {label}step {step}; lower the learning rate", "DIVERGED")
                losses.append(lv)
                if step % job.log_every == 0 or step == total:
                    dt = max(1e-9, time.time() - t_since)
                    emit({"event": "step", "step": step, "total": total, "loss": lv, "lr": sched.get_last_lr()[0],
                          "tokens_per_s": tokens_since / dt, "stage": si, "stages": len(job.plan)})
                    tokens_since, t_since = 0, time.time()
                step_tokens = per_step * st.seq_len
                at = tokens_before + step * step_tokens
                if job.eval_every and (at - step_tokens) // job.eval_every < at // job.eval_every and step < total:
                    eval_seconds += measure(si, step, at, corpus_windows_at(step), st.seq_len, seconds_before + elapsed())
                    tokens_since, t_since = 0, time.time()
                due = (job.checkpoint_steps is not None and step % job.checkpoint_steps == 0) or time.time() - last_ck >= job.checkpoint_seconds
                if due and step < total and dist.main:
                    write_checkpoint(job, model, opt, sched, si, step, losses, elapsed(), done, world, evals)
                    emit({"event": "checkpoint", "step": step, "stage": si, "path": checkpoint_path(job)})
                    last_ck = time.time()
            dist.end_stage()
            del fwd, step_opt
            for h in hooks:
                h.remove()
            for p in model.parameters():
                p.requires_grad_(False)
            seconds_here = time.time() - t_train - eval_seconds
            if st.recipe == "lora" and si < len(job.plan) - 1:
                model = model.merge_and_unload()  # the next stage trains the merged weights
            measure(si, total, tokens_before + total * per_step * st.seq_len, corpus_windows_at(total), st.seq_len,
                    seconds_before + prior_seconds + seconds_here)
            tokens = total * per_step * st.seq_len
            done.append({
                **asdict(st), "index": si, "steps": total, "tokens": tokens,
                "replay_windows": math.floor(total * per_step * frac),  # the windows k with visit(k)[0]
                "corpus_windows": corpus_windows_at(total),
                "trainable_parameters": trainable, "resumed_at": start or None,
                "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
                # the loss of every optimizer step (resumed runs keep the checkpointed ones): the stage's curve
                "losses": list(losses),
                "seconds": prior_seconds + seconds_here,
                "tokens_per_s": (total - start) * per_step * st.seq_len / max(1e-9, seconds_here),
            })
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
    last = job.plan[-1]
    train_seconds = sum(d["seconds"] for d in done)
    summary = {
        "engine": "torch", "written_by": "hack-tokenizer tune", "job": job_key(job, world), "device": str(device), **dist.info(),
        "threads": torch.get_num_threads(), "new_tokens": len(new_ids), "trainable_parameters": trainable_total,
        "corpus": corpus_info, "replay": ({**replay_info, "file": os.path.abspath(job.replay)} if replay_info else None),
        "steps": sum(d["steps"] for d in done), "resumed_at": (ck["step"] if ck is not None else None) or None,
        "first_loss": done[0]["first_loss"], "last_loss": done[-1]["last_loss"], "train_seconds": train_seconds,
        "tokens": sum(d["tokens"] for d in done),
        "tokens_per_s": sum(d["tokens"] for d in done) / max(1e-9, train_seconds),
        "stages": done,
        # held-out bits/byte along the run (empty without held-out texts); tokens and train_seconds count every stage
        "evals": evals,
        "versions": {"torch": torch.__version__},
    }
    model.eval()
    if not dist.main:  # the other processes' replicas equal rank 0's: it alone writes the output
        dist.end()
        return summary
    emit({"event": "phase", "phase": "writing", "out": job.out})
    write_output(job, model, summary, emit, lora=last.recipe == "lora")
    dist.end()
    summary["seconds"] = time.time() - t0
    emit({"event": "done", "out": job.out, "steps": summary["steps"], "first_loss": summary["first_loss"], "last_loss": summary["last_loss"],
          "tokens_per_s": summary["tokens_per_s"], "seconds": summary["seconds"]})
    return summary


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
