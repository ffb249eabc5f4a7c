"""Several processes under `accelerate launch` (DDP over gloo, two CPU processes) against one process.

accelerate 1.15 starts several local processes only through torchrun (its MULTI_GPU / FSDP / DeepSpeed launchers);
MULTI_CPU starts one process per machine and expects mpirun for more. So the config says MULTI_GPU and the job
says device cpu, which the engine turns into Accelerator(cpu=True): gloo between CPU processes.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, TINY, job, run
from test_train import tensors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_config(path, processes: int = 2) -> str:
    path.write_text(f"compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nnum_processes: {processes}\n"
                    f"num_machines: 1\nmachine_rank: 0\nmain_process_port: {free_port()}\nmixed_precision: 'no'\n")
    return str(path)


def launch(cfg: str, job_data: dict, job_file) -> subprocess.CompletedProcess:
    job_file.write_text(json.dumps(job_data))
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "python"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", cfg, "-m", "hack_tokenizer_train", str(job_file)],
                          capture_output=True, text=True, env=env, timeout=600)


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_two_processes_equal_one_with_twice_the_batch(tmp_path, pt_corpus, extended):
    common = dict(model=extended, original=TINY, corpus=[pt_corpus], recipe="rows", lr=1e-2, max_steps=3, grad_accum=2,
                  seq_len=32, schedule="cosine", warmup_steps=1, save_dtype="float32", threads=1, checkpoint_seconds=3600, device="cpu")
    one = run(job(**common, batch_size=2, out=str(tmp_path / "one"), work_dir=str(tmp_path / "w1")))
    out2 = tmp_path / "two"
    r = launch(accelerate_config(tmp_path / "acc.yaml"), {**common, "batch_size": 1, "out": str(out2), "work_dir": str(tmp_path / "w2")}, tmp_path / "job.json")
    assert r.returncode == 0, r.stderr[-3000:]
    evs = events(r.stdout)
    # rank 0 alone reports: one line per step, one done
    assert [e["step"] for e in evs if e["event"] == "step"] == [1, 2, 3]
    assert sum(e["event"] == "done" for e in evs) == 1
    assert any("2 processes (MULTI_CPU)" in e.get("message", "") for e in evs if e["event"] == "info")
    summary = json.loads((out2 / "tune.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 3 and summary["tokens"] == 3 * 2 * 2 * 32
    # the step losses are the means over both processes: those of one process with the whole batch
    assert summary["stages"][0]["first_loss"] == pytest.approx(one["stages"][0]["first_loss"], rel=1e-6)
    assert summary["stages"][0]["last_loss"] == pytest.approx(one["stages"][0]["last_loss"], rel=1e-6)
    # written once: no temporary directory left beside it
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".two")) == []
    a, b, orig = tensors(str(tmp_path / "one")), tensors(str(out2)), tensors(extended)
    assert sorted(a) == sorted(b)
    for k in a:
        # float32 all through, yet not bit-equal: DDP averages two one-window gradients where one process takes
        # the mean over a batch of two, and the sums round differently (measured: 6e-8 after 3 steps of lr 1e-2)
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-6), (k, (a[k] - b[k]).abs().max().item())
    emb = b["model.embed_tokens.weight"]
    assert torch.equal(emb[:8192].view(torch.int32), orig["model.embed_tokens.weight"][:8192].float().view(torch.int32))
    assert not torch.equal(emb[8192:], orig["model.embed_tokens.weight"][8192:].float())
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(str(out2))


def test_a_failing_process_is_named_and_fails_the_launch(tmp_path, pt_corpus):
    # every process refuses a bad job; the launcher exits non-zero and the error line names the problem
    r = launch(accelerate_config(tmp_path / "acc.yaml"), {"model": TINY, "corpus": [pt_corpus], "out": str(tmp_path / "o"), "work_dir": str(tmp_path / "w"),
                                                         "recipe": "full", "lr": -1, "device": "cpu"}, tmp_path / "job.json")
    assert r.returncode != 0
    errs = [e for e in events(r.stdout) if e["event"] == "error"]
    assert errs and all(e["key"] == "lr" for e in errs)
    assert any(e.get("rank") == 1 and e["message"].startswith("process 1 of 2: ") for e in errs), errs


def test_a_crash_in_one_process_surfaces(tmp_path, pt_corpus):
    # rank 1 alone fails in its first step (injected through sitecustomize); rank 0 is stopped by the launcher
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "import os\nif os.environ.get('RANK') == '1':\n    import hack_tokenizer_train.train as t\n"
        "    def boom(*a, **k):\n        raise RuntimeError('injected failure')\n    t.accumulate = boom\n")
    data = {"model": TINY, "corpus": [pt_corpus], "out": str(tmp_path / "o"), "work_dir": str(tmp_path / "w"), "recipe": "full",
            "lr": 1e-3, "batch_size": 1, "seq_len": 32, "max_steps": 3, "device": "cpu", "threads": 1}
    (tmp_path / "job.json").write_text(json.dumps(data))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "python"), str(inject)]), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", accelerate_config(tmp_path / "acc.yaml"),
                        "-m", "hack_tokenizer_train", str(tmp_path / "job.json")], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode != 0
    errs = [e for e in events(r.stdout) if e["event"] == "error"]
    assert errs[0]["rank"] == 1 and errs[0]["code"] == "CRASH" and errs[0]["message"] == "process 1 of 2: RuntimeError: injected failure", errs
    assert not (tmp_path / "o").exists()


def test_sharded_types_are_refused():
    from hack_tokenizer_train.dist import check_kind
    from hack_tokenizer_train.job import JobError

    for kind in ("NO", "MULTI_CPU", "MULTI_GPU"):
        check_kind(kind)
    for kind, stage, said in (("FSDP", None, "FSDP"), ("DEEPSPEED", 3, "DeepSpeed ZeRO-3"), ("DEEPSPEED", 2, "DeepSpeed ZeRO-2"), ("XLA", None, "XLA")):
        with pytest.raises(JobError) as e:
            check_kind(kind, stage)
        assert e.value.code == "UNSUPPORTED_DISTRIBUTED" and said in str(e.value) and "rank 0" in str(e.value)
