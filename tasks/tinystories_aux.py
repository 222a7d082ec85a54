"""tinystories_aux: the tinystories_overfit model and data with a second head for dialogue.

A linear head on the final hidden state of each window's last real token predicts
whether the story contains quoted speech (about half do) within the part the model
reads: the label of a window is 1 when the story's first quoted speech closes inside
it (with the cpu preset's 64-token windows that is a sixth of the real stories and
nearly half the generated ones; at the paper preset's 256 it is the story label). The
training loss is
``LM loss + lambda_dialogue * dialogue loss`` (binary cross-entropy), with
``lambda_dialogue`` a knob (role: objective weight) starting at 0.1. Under the fixed
recipe the language model overfits as in tinystories_overfit while the dialogue
head saturates early; the search objective stays the validation LM loss, with the
dialogue loss and accuracy reported alongside.

Everything else (data, tokenizer, presets, options, checkpoints, the training loop)
is tinystories_overfit's; this module adds only the head, the combined loss, the
dialogue metrics and the knob.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from searchmgr.surface import Knob, Recipe, Role, Scale
from searchmgr.tasks._gpt import GPT, GPTConfig
from searchmgr.tasks.tinystories import TinyStoriesOverfit


class DialogueGPT(GPT):
    """The GPT with a binary head on the hidden state of the last real token of each window."""

    def __init__(self, cfg: GPTConfig):
        super().__init__(cfg)
        self.dialogue_head = nn.Linear(cfg.n_embd, 1)
        nn.init.normal_(self.dialogue_head.weight, mean=0.0, std=0.02)
        nn.init.zeros_(self.dialogue_head.bias)

    def dialogue_logit(self, h: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, C) and last real positions (B,) -> dialogue logits (B,)."""
        pooled = h[torch.arange(h.shape[0], device=h.device), last]  # (B, C)
        return self.dialogue_head(pooled).squeeze(-1)  # (B,)


class TinyStoriesAux(TinyStoriesOverfit):
    name = "tinystories_aux"
    description = (
        "Language modelling of short children's stories with a small GPT trained from scratch with AdamW on a small "
        "training split (400 stories in the cpu preset, 2,000 in the paper preset), plus an auxiliary head that "
        "predicts whether a story contains dialogue (quoted speech); the training loss is the LM loss plus "
        "lambda_dialogue times the dialogue loss. The learning rate follows a cosine decay from the lr knob to a "
        "tenth of it over the whole schedule. The goal is the lowest validation LM loss (cross-entropy per token) at "
        "the end of the schedule; dialogue accuracy is reported."
    )

    def _knobs(self) -> tuple[Knob, ...]:
        return super()._knobs() + (
            Knob("lambda_dialogue", 0.01, 1.0, Scale.LOG, 1.0, Role.OBJECTIVE,
                 "weight of the dialogue-detection loss added to the LM loss"),
        )

    def base_recipe(self) -> Recipe:
        return super().base_recipe() | {"lambda_dialogue": 0.1}

    def build_model(self) -> DialogueGPT:
        return DialogueGPT(self.gpt_config())

    def loss(self, model: DialogueGPT, batch: tuple[torch.Tensor, ...], recipe: Recipe) -> tuple[torch.Tensor, dict]:
        x, y, dialogue, last = batch  # (B, T), (B, T), (B,), (B,)
        logits, h = model(x)  # (B, T, V), (B, T, C)
        lm = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=-1)
        dlg = F.binary_cross_entropy_with_logits(model.dialogue_logit(h, last).float(), dialogue)
        return lm + recipe["lambda_dialogue"] * dlg, {"loss": lm.detach(), "dialogue_loss": dlg.detach()}

    @torch.no_grad()
    def evaluate(self, model: DialogueGPT, split: str) -> dict[str, float]:
        """LM loss per token, dialogue loss and accuracy per story over ``split``'s fixed windows."""
        model.eval()
        x, y, dialogue, last = self.windows(split)
        lm_sum, n_tok, dlg_sum, n_right = 0.0, 0, 0.0, 0
        bs = self.preset.eval_batch
        for i in range(0, len(x), bs):
            xb, yb = x[i:i + bs].to(self.device), y[i:i + bs].to(self.device)  # (b, T), (b, T)
            db, lb = dialogue[i:i + bs].to(self.device), last[i:i + bs].to(self.device)  # (b,), (b,)
            with self._autocast():
                logits, h = model(xb)  # (b, T, V), (b, T, C)
                d_logit = model.dialogue_logit(h, lb).float()  # (b,)
            lm_sum += F.cross_entropy(logits.flatten(0, 1).float(), yb.flatten(), ignore_index=-1, reduction="sum").item()
            n_tok += int((yb >= 0).sum())
            dlg_sum += F.binary_cross_entropy_with_logits(d_logit, db, reduction="sum").item()
            n_right += int(((d_logit > 0).float() == db).sum())
        model.train()
        return {"loss": lm_sum / max(n_tok, 1), "dialogue_loss": dlg_sum / len(x), "dialogue_acc": n_right / len(x)}
