"""The PyTorch engine on the demo model: a few steps each, on one thread."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

from conftest import NEW_TOKENS, ROOT, TINY, job, run


def tensors(d: str) -> dict[str, torch.Tensor]:
    out = {}
    with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
        for k in f.keys():
            out[k] = f.get_tensor(k)
    return out


def test_loss_falls_on_repeated_text(tmp_path, pt_corpus):
    s = run(job(model=TINY, out=str(tmp_path / "out"), corpus=[pt_corpus], work_dir=str(tmp_path / "w"), recipe="full", lr=1e-3, max_steps=8))
    assert s["last_loss"] < 0.6 * s["first_loss"], (s["first_loss"], s["last_loss"])
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out"))
    assert m.config.vocab_size == 8192
    # tokenizer files of the input model are carried over; dtype kept (bf16)
    assert os.path.isfile(tmp_path / "out" / "tokenizer.json")
    assert json.load(open(tmp_path / "out" / "config.json"))["dtype"] == "bfloat16"


@pytest.mark.parametrize("which", ["extended", "extended_untied"])
def test_rows_changes_only_new_rows(tmp_path, pt_corpus, which, request):
    model = request.getfixturevalue(which)
    evs = []
    s = run(job(model=model, original=TINY, out=str(tmp_path / "out"), corpus=[pt_corpus], work_dir=str(tmp_path / "w"), recipe="rows", lr=1e-2, max_steps=3), evs)
    assert s["new_tokens"] == len(NEW_TOKENS)
    before, after = tensors(model), tensors(str(tmp_path / "out"))
    assert sorted(before) == sorted(after)
    new = list(range(8192, 8192 + len(NEW_TOKENS)))
    for k in before:
        a, b = before[k], after[k]
        assert a.dtype == b.dtype and a.shape == b.shape
        if k in ("model.embed_tokens.weight", "lm_head.weight"):
            # old rows bit-identical (compare the raw bits), new rows trained
            assert torch.equal(a[:8192].view(torch.int16), b[:8192].view(torch.int16)), k
            assert not torch.equal(a[new], b[new]), k
        else:
            assert torch.equal(a.view(torch.uint8) if a.dtype != torch.bfloat16 else a.view(torch.int16),
                               b.view(torch.uint8) if b.dtype != torch.bfloat16 else b.view(torch.int16)), k
    assert [e for e in evs if e["event"] == "step"][-1]["step"] == 3


def test_lora_merged_equals_base_plus_adapter(tmp_path, pt_corpus, extended):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = str(tmp_path / "out")
    run(job(model=extended, original=TINY, out=out, corpus=[pt_corpus], work_dir=str(tmp_path / "w"), recipe="lora", lr=5e-3, max_steps=3, save_dtype="float32"))
    assert os.path.isfile(os.path.join(out, "adapter", "adapter_config.json"))
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(extended, dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, os.path.join(out, "adapter")).eval()
    ids = torch.tensor([[5, 100, 8192, 8193, 300, 8195, 42, 8199]])
    with torch.no_grad():
        a = merged(input_ids=ids).logits
        b = with_adapter(input_ids=ids).logits
        plain = AutoModelForCausalLM.from_pretrained(extended, dtype=torch.float32).eval()(input_ids=ids).logits
    assert (a - b).abs().max().item() < 1e-4
    assert (a - plain).abs().max().item() > 1e-3  # the adapter did something


def test_resume_equals_uninterrupted(tmp_path, pt_corpus):
    from hack_tokenizer_train.train import Interrupted

    common = dict(model=TINY, corpus=[pt_corpus], recipe="full", lr=3e-4, max_steps=6, schedule="cosine", warmup_steps=2, save_dtype="float32")
    run(job(out=str(tmp_path / "a"), work_dir=str(tmp_path / "wa"), **common))
    with pytest.raises(Interrupted):
        run(job(out=str(tmp_path / "b"), work_dir=str(tmp_path / "wb"), stop_after_steps=3, **common))
    assert not os.path.exists(tmp_path / "b")
    from hack_tokenizer_train.job import JobError

    with pytest.raises(JobError, match=r"different job \(differs in: lr\)"):
        run(job(out=str(tmp_path / "b"), work_dir=str(tmp_path / "wb"), resume=True, **{**common, "lr": 1e-3}))
    s = run(job(out=str(tmp_path / "b"), work_dir=str(tmp_path / "wb"), resume=True, **common))
    assert s["resumed_at"] == 3
    ta, tb = tensors(str(tmp_path / "a")), tensors(str(tmp_path / "b"))
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


def test_bad_jobs(tmp_path, pt_corpus):
    from hack_tokenizer_train.job import JobError

    base = dict(model=TINY, out=str(tmp_path / "o"), corpus=[pt_corpus], work_dir=str(tmp_path / "w"))
    with pytest.raises(JobError, match="unknown job key"):
        job(**base, lerning_rate=1)
    with pytest.raises(JobError, match="expected one of rows, embeddings, lora, full"):
        job(**base, recipe="everything")
    with pytest.raises(JobError, match="original"):
        job(**base, recipe="rows")
    with pytest.raises(JobError, match="weight decay"):
        job(**base, recipe="rows", original=TINY, weight_decay=0.1)
    if not torch.cuda.is_available():
        with pytest.raises(JobError, match="no CUDA device"):
            run(job(**base, recipe="full", device="cuda"))
    with pytest.raises(JobError, match="smaller than one batch"):
        run(job(**base, recipe="full", max_tokens=10))
    assert not os.path.exists(tmp_path / "o")


def test_cli_protocol(tmp_path, pt_corpus):
    """The process the launcher spawns: JSON lines on stdout, exit 2 with an error event for a bad job."""
    jf = tmp_path / "job.json"
    jf.write_text(json.dumps({"model": TINY, "out": str(tmp_path / "o"), "corpus": [pt_corpus], "work_dir": str(tmp_path / "w"), "recipe": "bogus"}))
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "python")}
    p = subprocess.run([sys.executable, "-m", "hack_tokenizer_train", str(jf)], capture_output=True, text=True, env=env)
    assert p.returncode == 2
    ev = json.loads(p.stdout.strip().splitlines()[-1])
    assert ev["event"] == "error" and ev["key"] == "recipe"
    p = subprocess.run([sys.executable, "-m", "hack_tokenizer_train", "--check-versions"], capture_output=True, text=True, env=env)
    assert json.loads(p.stdout)["ok"] is True, p.stdout
