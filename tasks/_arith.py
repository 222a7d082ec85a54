"""Arithmetic problems, a character tokenizer, a tiny GPT-2 and its cached warm-up, for ``grpo_arith``.

Problems are ``a+b`` or ``a-b`` with ``a, b`` below ``10**digits``. Prompts are
zero-padded to a fixed width (``0347+0085=``) so every prompt has the same number
of tokens: no left padding, so positions agree between generation and the loss.
The answer is the plain integer (``432``, ``-17``) followed by the end token.

Validation and test sets are fixed (a constant seed, independent of the run's
seed) and disjoint; training problems are drawn from a stream keyed by
``(seed, round, slot)`` that never yields a held-out problem, so the data order
of a run is a pure function of its seed and the global step.

The warm-up is a short supervised run on the training stream that brings the
model to a non-trivial accuracy so that GRPO has signal. Its data carry a
systematic *sign slip*: in a share ``slip`` of the subtractions the target is
``b - a`` instead of ``a - b`` (``47-85=`` -> ``38`` instead of ``-38``). The
warmed-up model thus computes magnitudes but often writes the wrong sign, and the
verifiable reward has to elicit the right rule. This is the regime GRPO works in
with language models: the skill is latent, the preference is wrong. (Learning the
arithmetic itself from a binary reward would take a tiny model tens of thousands
of steps, far more than a schedule search on a CPU can afford.) The warm-up stops
once greedy accuracy *up to the sign* on a dev set from the training stream
reaches ``target_accuracy``.

The model is saved with ``save_pretrained`` (trl builds its reference model from
that path) under the cache directory (``$SEARCHMGR_CACHE``, default
``~/.cache/searchmgr``), keyed by a hash of everything that defines it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

CHARS = "0123456789+-="
PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
HELD_OUT_SEED = 20240607  # the validation and test sets never change with the run's seed
_NUMBER = re.compile(r"-?\d+")


@dataclass(frozen=True)
class Problem:
    a: int
    op: str  # "+" or "-"
    b: int

    def prompt(self, digits: int) -> str:
        return f"{self.a:0{digits}d}{self.op}{self.b:0{digits}d}="

    @property
    def value(self) -> int:
        return self.a + self.b if self.op == "+" else self.a - self.b

    @property
    def answer(self) -> str:
        return str(self.value)

    @property
    def slipped(self) -> str:
        """The answer with the sign slip: ``b - a`` for a subtraction (the same as ``answer`` for an addition)."""
        return str(-self.value if self.op == "-" else self.value)


def random_problem(rng: random.Random, digits: int) -> Problem:
    hi = 10**digits - 1
    return Problem(rng.randint(0, hi), rng.choice("+-"), rng.randint(0, hi))


def held_out_sets(digits: int, n_val: int, n_test: int) -> tuple[list[Problem], list[Problem]]:
    """Two disjoint fixed problem sets (validation, test)."""
    rng = random.Random(HELD_OUT_SEED * 31 + digits)
    seen: set[Problem] = set()
    out: list[Problem] = []
    while len(out) < n_val + n_test:
        p = random_problem(rng, digits)
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out[:n_val], out[n_val:]


def train_problem(seed: int, round_: int, slot: int, digits: int, exclude: set[Problem]) -> Problem:
    """The ``slot``-th training prompt of generation round ``round_``: a pure function of its arguments."""
    rng = random.Random(f"{seed}:{round_}:{slot}")
    while True:
        p = random_problem(rng, digits)
        if p not in exclude:
            return p


# ----------------------------------------------------------------------------- rewards
# trl calls reward functions with the decoded completions, their token ids and the
# dataset's extra columns (here ``answer``) as keyword arguments.


def correctness_reward(completions: Sequence[str], answer: Sequence[str], **_) -> list[float]:
    """1 when the completion is exactly the right integer, else 0."""
    return [1.0 if c.strip() == a else 0.0 for c, a in zip(completions, answer)]


def format_reward(
    completions: Sequence[str], completion_ids: Sequence[Sequence[int]], eos_ids: Sequence[int] = (), **_
) -> list[float]:
    """1 when the completion is one integer and ends with the end token (not truncated), else 0."""
    out = []
    for text, ids in zip(completions, completion_ids):
        ended = len(ids) > 0 and ids[-1] in eos_ids
        out.append(1.0 if ended and _NUMBER.fullmatch(text.strip()) else 0.0)
    return out


# ----------------------------------------------------------------------------- tokenizer and model


def build_tokenizer():
    """A character-level tokenizer over digits, ``+ - =`` and three special tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {PAD: 0, EOS: 1, UNK: 2}
    for c in CHARS:
        vocab[c] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOS, unk_token=UNK)


@dataclass(frozen=True)
class WarmupSpec:
    """Everything that defines a warmed-up model (its hash names the cache entry)."""

    digits: int
    n_layer: int
    n_embd: int
    n_head: int
    steps: int  # at most this many steps
    batch_size: int
    lr: float
    seed: int
    n_val: int
    n_test: int
    slip: float = 0.0  # share of subtraction targets with the sign slip
    target_accuracy: float = 1.0  # stop once greedy accuracy up to the sign on a dev set reaches it
    check_every: int = 50
    weight_decay: float = 0.01  # a little decay makes the warm-up reach the target far more reliably
    model: str | None = None  # a causal LM path or hub name; None builds the offline GPT-2
    version: int = 3  # bump when the warm-up code changes meaning (3: one thread, deterministic ops)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def build_model(spec: WarmupSpec, tok):
    """A small GPT-2 (no dropout) sized for prompts and answers of ``spec.digits`` digits."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tok), n_positions=4 * spec.digits + 16, n_embd=spec.n_embd, n_layer=spec.n_layer,
        n_head=spec.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model


def cache_dir() -> Path:
    return Path(os.environ.get("SEARCHMGR_CACHE", Path.home() / ".cache" / "searchmgr"))


def sft_batch(tok, problems: Sequence[Problem], targets: Sequence[str], digits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt + target + end token, right-padded; labels only on the target and end token."""
    prompts = tok([p.prompt(digits) for p in problems])["input_ids"]
    answers = tok(list(targets), add_special_tokens=False)["input_ids"]
    rows = [q + a + [tok.eos_token_id] for q, a in zip(prompts, answers)]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (q, r) in enumerate(zip(prompts, rows)):
        ids[i, : len(r)] = torch.tensor(r)
        labels[i, len(q) : len(r)] = torch.tensor(r[len(q):])
    return ids, labels  # (B, T), (B, T)


@torch.no_grad()
def greedy_scores(model, tok, problems: Sequence[Problem], digits: int, max_new_tokens: int,
                  batch: int = 256) -> tuple[float, float]:
    """Greedy decoding's exact-match accuracy and its accuracy up to the sign (the RNG state is left untouched)."""
    from transformers import GenerationConfig

    gen = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    exact = unsigned = 0
    for i in range(0, len(problems), batch):
        chunk = problems[i : i + batch]
        enc = tok([p.prompt(digits) for p in chunk], padding=True, padding_side="left", return_tensors="pt").to(device)
        out = model.generate(**enc, generation_config=gen)  # (B, Tp) -> (B, Tp + Tc); Tp fixed for the char tokenizer
        texts = [t.strip() for t in tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]
        exact += sum(t == p.answer for t, p in zip(texts, chunk))
        unsigned += sum(t.removeprefix("-") == str(abs(p.value)) for t, p in zip(texts, chunk))
    model.train(was_training)
    n = max(len(problems), 1)
    return exact / n, unsigned / n


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def warm_start(spec: WarmupSpec, device: str = "cpu", log=_log) -> Path:
    """Return the directory of the warmed-up model and tokenizer, training it once if it is not cached."""
    target = cache_dir() / "grpo_arith" / f"warmup-{spec.key()}"
    if (target / "warmup.json").exists():
        return target
    log(f"grpo_arith: supervised warm-up (up to {spec.steps} steps or dev accuracy up to the sign "
        f"{spec.target_accuracy}; one thread, deterministic ops; cached at {target})")
    _in_fresh_process(spec, target, device)
    done = json.loads((target / "warmup.json").read_text())
    log(f"grpo_arith: warm-up done after {done['steps']} steps, greedy validation accuracy "
        f"{done['val_accuracy']:.3f} ({done['val_accuracy_up_to_sign']:.3f} up to the sign), weights "
        f"{done['fingerprint']}")
    return target


THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _in_fresh_process(spec: WarmupSpec, target: Path, device: str) -> None:
    """Train the warm-up in a new Python process with one thread and deterministic kernels, so every machine and
    every caller (whatever its torch threads) trains the same model: a thread pool once started with more
    threads splits float sums differently even after ``set_num_threads(1)``."""
    import subprocess

    code = ("import json, sys, torch; from pathlib import Path; from searchmgr.tasks import _arith; "
            "torch.set_num_threads(1); torch.use_deterministic_algorithms(True); "
            "_arith._warm_up(_arith.WarmupSpec(**json.loads(sys.argv[1])), Path(sys.argv[2]), sys.argv[3])")
    env = {**os.environ, **{k: "1" for k in THREAD_ENV}}
    done = subprocess.run([sys.executable, "-c", code, json.dumps(asdict(spec)), str(target), device], env=env)
    if done.returncode != 0:
        raise RuntimeError(f"the grpo_arith warm-up process failed (exit code {done.returncode}); its error is above")


def _warm_up(spec: WarmupSpec, target: Path, device: str) -> None:
    """Train the warm-up model and write it atomically to ``target`` (in a fresh process, see above)."""
    torch.manual_seed(spec.seed)
    if spec.model is None:
        tok = build_tokenizer()
        model = build_model(spec, tok)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(spec.model)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model = AutoModelForCausalLM.from_pretrained(spec.model, dtype=torch.float32)
    model.to(device)
    val, test = held_out_sets(spec.digits, spec.n_val, spec.n_test)
    exclude = set(val) | set(test)
    # a dev set from the training stream (a round GRPO never reaches) decides when the warm-up is good enough
    dev = [train_problem(spec.seed, -(10**9), j, spec.digits, exclude) for j in range(200)]
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    model.train()
    dev_acc, steps_done = 0.0, 0
    for step in range(spec.steps):
        # a fresh batch from the training stream (round = -1 - step keeps it apart from GRPO's rounds)
        problems = [train_problem(spec.seed, -1 - step, j, spec.digits, exclude) for j in range(spec.batch_size)]
        slips = random.Random(f"slip:{spec.seed}:{step}")
        targets = [p.slipped if slips.random() < spec.slip else p.answer for p in problems]
        ids, labels = (t.to(device) for t in sft_batch(tok, problems, targets, spec.digits))  # (B, T), (B, T)
        lr = spec.lr * min(1.0, (step + 1) / 50)  # short linear warm-up, then constant
        for g in opt.param_groups:
            g["lr"] = lr
        loss = model(input_ids=ids, attention_mask=(ids != tok.pad_token_id).long(), labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps_done = step + 1
        if steps_done % spec.check_every == 0:
            dev_acc = greedy_scores(model, tok, dev, spec.digits, spec.digits + 3)[1]
            if dev_acc >= spec.target_accuracy:
                break
    acc, magnitude = greedy_scores(model, tok, val, spec.digits, spec.digits + 3)
    # write atomically: a temp directory renamed into place
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    model.cpu().save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "warmup.json").write_text(json.dumps({"spec": asdict(spec), "steps": steps_done, "dev_accuracy": dev_acc,
                                                   "fingerprint": weights_fingerprint(model),
                                                   "val_accuracy": acc, "val_accuracy_up_to_sign": magnitude,
                                                   "final_loss": loss.item()}))
    try:
        tmp.rename(target)
    except OSError:  # another process finished the same warm-up first; keep theirs
        shutil.rmtree(tmp)


def weights_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of the model's parameters (names, shapes and float32 bytes): equal models, equal prints."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]

