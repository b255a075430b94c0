"""The hf backend with a tiny random LLaVA built here (config + a `tokenizers` tokenizer):
the plumbing (images through the processor, generate, reply handling) is asserted, not text."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_agent.backends.hf import HFBackend
from llm_agent.investigator import investigate
from llm_agent.taxonomy import RootCause
from tests.test_llm_fixture_store import build_store, catalog

IMAGE_TOKENS = 16  # (32 px / 8 px patches)^2


def tiny_llava(folder: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    words = [
        "the",
        "a",
        "label",
        "item",
        "size",
        "king",
        "twin",
        "root",
        "cause",
        "damaged",
        "json",
        "{",
        "}",
        ":",
        ",",
        '"',
        "answers",
        "claims",
        "summary",
    ]
    vocab = {t: i for i, t in enumerate(["<pad>", "<s>", "</s>", "<unk>", "<image>", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    template = (
        "{% for m in messages %}{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}"
        "{% endfor %}{% endfor %}"
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=template,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        text_config=LlamaConfig(
            vocab_size=len(vocab),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=8192,
        ),
        image_token_index=vocab["<image>"],
        image_seq_length=IMAGE_TOKENS,
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


def test_hf_backend_plumbing(model_dir, tmp_path) -> None:
    db = build_store(tmp_path)
    backend = HFBackend(model=model_dir, max_new_tokens=8)
    report, _ = investigate(
        db, "DMG-1", "box came crushed", backend=backend, catalog=catalog(), dataset=tmp_path, use_embeddings=False
    )
    assert report.backend == "hf" and report.model == model_dir.name
    # one 32x32 frame went through the vision tower; its image tokens were expanded in the prompt
    assert backend.last_inputs["pixel_values"] == (1, 3, 32, 32)
    assert backend.last_inputs["input_ids"][1] > IMAGE_TOKENS
    # a random model cannot write the JSON: that is reported, and the tool answers stand
    assert any("model reply unusable" in e for e in report.errors)
    assert report.root_cause is RootCause.DAMAGED_BEFORE_SHIPMENT
    assert report.transcript[0].answer.source == "tool:inspect_damage"


def test_hf_backend_needs_a_local_folder(tmp_path) -> None:
    with pytest.raises(ValueError, match="local model folder"):
        HFBackend(model=tmp_path / "missing")
