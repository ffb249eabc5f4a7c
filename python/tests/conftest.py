"""Fixtures: the demo model, an extended copy (new tokens with mean-initialized rows), tied and untied."""
from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
TINY = os.path.join(ROOT, "assets", "models", "tiny-en-llama")
NEW_TOKENS = ["ção", " Assembleia", " deputados", " Governo", " também", "ões", " português", " sobre"]
PT_TEXT = ("A Assembleia da República aprovou hoje, na generalidade, a proposta do Governo sobre a reforma das "
           "instituições, com os votos favoráveis dos deputados do PS e a abstenção dos restantes partidos. ")


def make_extended(dst: str, tied: bool) -> str:
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.bfloat16)
    tok = Tokenizer.from_file(os.path.join(TINY, "tokenizer.json"))
    vocab = tok.get_vocab_size()
    tok.add_tokens([t for t in NEW_TOKENS if t not in tok.get_vocab()])
    n_new = tok.get_vocab_size() - vocab
    if not tied:
        model.config.tie_word_embeddings = False
        head = torch.nn.Linear(model.config.hidden_size, vocab, bias=False, dtype=torch.bfloat16)
        with torch.no_grad():
            head.weight.copy_(model.get_input_embeddings().weight + 0.01)
        model.lm_head = head
    model.resize_token_embeddings(vocab + n_new, mean_resizing=True)
    os.makedirs(dst, exist_ok=True)
    model.save_pretrained(dst)
    tok.save(os.path.join(dst, "tokenizer.json"))
    shutil.copy(os.path.join(TINY, "tokenizer_config.json"), dst)
    return dst


@pytest.fixture(scope="session")
def extended(tmp_path_factory) -> str:
    return make_extended(str(tmp_path_factory.mktemp("ext-tied")), tied=True)


@pytest.fixture(scope="session")
def extended_untied(tmp_path_factory) -> str:
    return make_extended(str(tmp_path_factory.mktemp("ext-untied")), tied=False)


@pytest.fixture(scope="session")
def pt_corpus(tmp_path_factory) -> str:
    p = tmp_path_factory.mktemp("corpus") / "pt.txt"
    p.write_text("\n".join([PT_TEXT * 2] * 40) + "\n", encoding="utf-8")
    return str(p)


def job(**kw):
    from hack_tokenizer_train.job import parse_job

    small = {"seq_len": 32, "batch_size": 2, "schedule": "constant"}
    base = {"threads": 1, "checkpoint_seconds": 3600}
    if "stages" in kw and isinstance(kw["stages"], list):
        # the small-test defaults go into each stage (stage keys are not allowed beside `stages`)
        kw = {**kw, "stages": [{**small, **st} if isinstance(st, dict) else st for st in kw["stages"]]}
        return parse_job({**base, **kw})
    return parse_job({**base, **small, **kw})


def run(j, events=None):
    from hack_tokenizer_train.train import train

    evs = [] if events is None else events
    return train(j, evs.append)
