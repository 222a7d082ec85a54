"""A TrainerTask plug-in: a config-built GPT-2 trained by the Hugging Face Trainer on short stories.

    searchmgr explore task=examples/hf_gpt2_task.py:TinyGPT2Stories preset=smoke

Stories come from ``data=PATH`` (TinyStories text with ``<|endoftext|>`` separators,
``.jsonl`` or ``.parquet`` with a ``text`` field) or, by default, from searchmgr's offline
story generator. A byte-level BPE is trained on the training split; the model is a
``GPT2LMHeadModel`` built from a ``GPT2Config`` (no hub download). The search moves the
learning rate, weight decay and dropout of the Trainer you would write anyway.
"""

from __future__ import annotations

import torch
from pydantic import Field
from transformers import GPT2Config, GPT2LMHeadModel, TrainingArguments

from searchmgr.hf import TrainerTask, knobs
from searchmgr.tasks import SearchDefaults, TaskOptions
from searchmgr.tasks._stories import EOT, load_splits, train_tokenizer

PRESETS = {  # stories (train, val, test), context, width, layers, batch, search defaults
    "default": dict(n=(2000, 200, 200), context=128, width=128, layers=4, batch=16,
                    defaults=SearchDefaults(segment_steps=200, max_depth=4, budget_steps=4000, eval_every=50)),
    "smoke": dict(n=(48, 16, 16), context=32, width=32, layers=2, batch=8,
                  defaults=SearchDefaults(segment_steps=8, max_depth=2, budget_steps=40, eval_every=4)),
}


class StoryOptions(TaskOptions):
    preset: str = Field("default", description="sizes and budgets: default or smoke")
    data: str = Field("generator", description="stories file (txt, jsonl, parquet) or 'generator'")
    vocab_size: int = Field(512, ge=300, description="BPE vocabulary size")


def blocks(tok, stories: list[str], context: int) -> list[dict[str, torch.Tensor]]:
    """Concatenate the stories (EOT between them) and cut fixed windows: causal LM examples."""
    ids = [i for s in stories for i in tok.encode(s + EOT).ids]
    return [{"input_ids": torch.tensor(ids[i:i + context]), "labels": torch.tensor(ids[i:i + context])}
            for i in range(0, len(ids) - context + 1, context)]


class TinyGPT2Stories(TrainerTask):
    Options = StoryOptions
    presets = tuple(PRESETS)

    def __init__(self, options: StoryOptions | None = None):
        o = options or StoryOptions()
        p = PRESETS[o.preset] if o.preset in PRESETS else PRESETS["default"]
        splits = load_splits(o.data, *p["n"])
        tok, _ = train_tokenizer(splits.train, o.vocab_size)
        eot = tok.token_to_id(EOT)
        config = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=p["context"], n_embd=p["width"],
                            n_layer=p["layers"], n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                            bos_token_id=eot, eos_token_id=eot)
        args = TrainingArguments(output_dir="unused", per_device_train_batch_size=p["batch"],
                                 per_device_eval_batch_size=64, lr_scheduler_type="cosine", use_cpu=True,
                                 dataloader_num_workers=0)
        self.source = splits.source
        super().__init__(
            name="tiny_gpt2_stories", model_init=lambda: GPT2LMHeadModel(config), args=args,
            train_dataset=blocks(tok, splits.train, p["context"]), eval_dataset=blocks(tok, splits.val, p["context"]),
            test_dataset=blocks(tok, splits.test, p["context"]),
            knobs=[knobs.learning_rate(1e-4, 1e-2), knobs.weight_decay(0.0, 0.3), knobs.dropout(0.0, 0.3)],
            base_recipe={"learning_rate": 3e-3, "weight_decay": 0.0, "dropout": 0.0},
            search_defaults=p["defaults"], options=o,
            description=f"A {p['layers']}-layer GPT-2 (width {p['width']}) trained by the Hugging Face Trainer "
                        "(AdamW, cosine schedule over the horizon) on short stories; goal: the lowest validation "
                        "loss at the end of the schedule")

    def info(self) -> dict:
        return {**super().info(), "data_source": self.source}
