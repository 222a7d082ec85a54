"""TinyStories data: sources, splits, a locally trained byte-level BPE, token caches.

Where the stories come from, in order:

1. a path the user passes: TinyStories plain text (stories separated by a line
   ``<|endoftext|>``), ``.jsonl`` or ``.parquet`` with a ``text`` field;
2. the hub dataset ``roneneldan/TinyStories``, only when the hub answers within a
   few seconds and ``HF_HUB_OFFLINE`` is not set;
3. an offline generator of TinyStories-style stories written here (templated
   stories with characters, places and objects, about half with quoted dialogue),
   deterministic given a seed.

The source used is recorded in :attr:`StorySplits.source`. Stories are shuffled
with a fixed seed and split into train / validation / test. The tokenizer is a
byte-level BPE trained on the training split with ``tokenizers`` and cached, with
the encoded splits, under ``$SEARCHMGR_CACHE`` (default ``~/.cache/searchmgr``),
keyed by a hash of the data and the vocabulary size.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import socket
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

EOT = "<|endoftext|>"
PAD = "<|pad|>"
HUB_DATASET = "roneneldan/TinyStories"
HUB_FILE = "TinyStories-valid.txt"  # ~22k stories, 19 MB: plenty for a 2,000-story training split
DATA_SPLIT_SEED = 20230512  # fixes the train/val/test split; the search seed only varies the model
TOKENIZER_VERSION = 1  # bump when the tokenizer recipe changes, so old caches are not reused
TOKENS_VERSION = 2  # bump when the encoded-split layout changes
NO_QUOTE = 2**31 - 1  # quote_at of a story without quoted speech

_QUOTED = re.compile(r"[\"“”][^\"“”\n]{2,}[\"“”]")


def cache_dir() -> Path:
    """``$SEARCHMGR_CACHE`` or ``~/.cache/searchmgr``."""
    return Path(os.environ.get("SEARCHMGR_CACHE") or Path.home() / ".cache" / "searchmgr")


def has_dialogue(text: str) -> bool:
    """Whether a story contains quoted speech."""
    return _QUOTED.search(text) is not None


# ---------------------------------------------------------------- sources


def read_stories(path: str | Path) -> list[str]:
    """Stories from a TinyStories ``.txt`` file, or a ``.jsonl`` / ``.parquet`` file with a ``text`` field."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        stories = path.read_text(encoding="utf-8").split(EOT)
    elif suffix == ".jsonl":
        stories = []
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                    raise ValueError(f"{path}:{i}: every line must be a JSON object with a string field 'text'")
                stories.append(row["text"])
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        if "text" not in table.column_names:
            raise ValueError(f"{path} has no 'text' column; its columns are {table.column_names}")
        stories = [s for s in table.column("text").to_pylist() if isinstance(s, str)]
    else:
        raise ValueError(f"data file {path} must end in .txt, .jsonl or .parquet")
    stories = [s.strip() for s in stories]
    return [s for s in stories if len(s) >= 20]  # drop empty entries and stray fragments


_HUB_REACHABLE: dict[str, bool] = {}


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection within ``timeout`` seconds.

    ``HF_HUB_OFFLINE=1`` means no. The check (DNS included) runs in a daemon thread,
    so a stuck resolver cannot hang the caller; the answer is remembered per process.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if endpoint in _HUB_REACHABLE:
        return _HUB_REACHABLE[endpoint]
    url = urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    answer: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    _HUB_REACHABLE[endpoint] = bool(answer and answer[0])
    return _HUB_REACHABLE[endpoint]


def load_hub_stories() -> list[str]:
    """Stories of the hub dataset's validation text file (downloaded once into the hub cache)."""
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(repo_id=HUB_DATASET, filename=HUB_FILE, repo_type="dataset")
    return read_stories(path)


# ---------------------------------------------------------------- the offline story generator

_HEROES = [  # name, kind, pronoun set
    ("lily", "girl", "f"), ("tom", "boy", "m"), ("mia", "girl", "f"), ("ben", "boy", "m"), ("sue", "girl", "f"),
    ("max", "boy", "m"), ("anna", "girl", "f"), ("sam", "boy", "m"), ("lucy", "girl", "f"), ("jack", "boy", "m"),
    ("emma", "girl", "f"), ("leo", "boy", "m"), ("zoe", "girl", "f"), ("tim", "boy", "m"), ("ella", "girl", "f"),
    ("finn", "boy", "m"), ("rosa", "girl", "f"), ("joe", "boy", "m"), ("amy", "girl", "f"), ("dan", "boy", "m"),
    ("kitty", "cat", "f"), ("spot", "dog", "m"), ("fluffy", "bunny", "f"), ("pip", "bird", "m"),
    ("bella", "puppy", "f"), ("bruno", "bear", "m"), ("daisy", "duck", "f"), ("oscar", "frog", "m"),
    ("molly", "mouse", "f"), ("rex", "dog", "m"), ("luna", "kitten", "f"), ("bob", "fox", "m"),
    ("nina", "squirrel", "f"), ("toby", "turtle", "m"), ("ruby", "ladybug", "f"), ("milo", "monkey", "m"),
    ("lola", "girl", "f"), ("ned", "boy", "m"), ("kim", "girl", "f"), ("gus", "boy", "m"), ("ivy", "girl", "f"),
    ("otto", "boy", "m"), ("mae", "girl", "f"), ("eli", "boy", "m"), ("tess", "girl", "f"), ("hugo", "boy", "m"),
    ("penny", "pig", "f"), ("coco", "cow", "f"), ("buzz", "bee", "m"), ("sunny", "sheep", "f"), ("felix", "cat", "m"),
    ("dot", "hen", "f"), ("ziggy", "zebra", "m"), ("rosie", "robin", "f"), ("ollie", "owl", "m"), ("hazel", "hedgehog", "f"),
]
_PRONOUNS = {"f": ("she", "her", "her"), "m": ("he", "him", "his")}
_PLACES = [
    "the park", "the forest", "the beach", "the garden", "the farm", "the big hill", "the lake", "the zoo",
    "the market", "the playground", "the river", "the library", "the woods", "the meadow", "grandma's house",
    "the school", "the old barn", "the pond", "the toy shop", "the bakery", "the field", "the backyard",
    "the sea", "the cave", "the castle", "the garden shed", "the mountain", "the town square",
]
_OBJECTS = [
    "ball", "kite", "hat", "toy car", "doll", "book", "box", "shell", "flower", "cup", "boat", "balloon",
    "drum", "blanket", "crayon", "cookie", "key", "ring", "rock", "stick", "bell", "feather", "teddy bear",
    "truck", "bucket", "spoon", "map", "lamp", "scarf", "sock", "apple", "leaf", "coin", "button", "train",
    "puzzle", "whistle", "jar", "basket", "umbrella", "mirror", "candle", "pebble", "ribbon", "bike",
]
_ADJ = [
    "red", "blue", "big", "little", "shiny", "soft", "old", "new", "yellow", "green", "pink", "tiny", "funny",
    "pretty", "purple", "striped", "round", "fuzzy", "golden", "bright", "smooth", "sparkly", "brown", "white",
]
_CREATURES = [
    "bird", "cat", "dog", "duck", "frog", "bee", "butterfly", "squirrel", "rabbit", "mouse", "snail", "worm",
    "horse", "goat", "fish", "ant", "owl", "crab", "puppy", "kitten", "ladybug", "spider", "turtle", "lamb",
]
_ACTIONS = [
    "sang", "hopped", "slept", "danced", "jumped", "sat", "played", "ran", "looked around", "waved", "smiled",
    "hid", "rested", "splashed", "flew", "crawled", "ate a snack", "wiggled", "spun around", "peeked out",
]
_SPOTS = [
    "on the fence", "under the tree", "by the window", "in the grass", "on a rock", "near the door", "in the mud",
    "on the roof", "by the pond", "in a puddle", "on the path", "behind the bush", "in the sun", "on a leaf",
    "under the bench", "by the gate", "in the flowers", "on the wall", "next to the car", "in a little hole",
]
_SOUNDS = ["a bell", "the wind", "a bird singing", "a dog barking", "the rain", "music", "a train", "laughing",
           "a buzzing bee", "the waves", "a drum", "a frog croaking", "the leaves rustling", "a truck", "children playing"]
_SMELLS = ["cookies", "flowers", "rain", "fresh bread", "grass", "soup", "the sea", "pine trees", "apple pie", "popcorn"]
_WEATHER = ["sunny", "rainy", "windy", "cold", "warm", "cloudy", "snowy", "bright"]
_FOODS = ["cake", "soup", "pie", "bread", "cookies", "apples", "honey", "carrots", "sandwiches", "ice cream"]
_GOOD = ["happy", "glad", "proud", "excited", "thankful", "calm", "cheerful", "joyful"]
_BAD = ["sad", "scared", "angry", "worried", "lonely", "upset", "grumpy", "shy"]
_MORALS = [
    "sharing is caring.", "it is good to help others.", "being kind makes everyone happy.",
    "you should always say sorry when you make a mistake.", "friends make everything better.",
    "it is important to be brave.", "listening to your mom is wise.", "patience brings good things.",
    "telling the truth is always best.", "hard work pays off.",
]


class _Story:
    """One story under construction: the cast, the setting, and a list of sentences."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.hero, self.hero_kind, g = rng.choice(_HEROES)
        self.he, self.him, self.his = _PRONOUNS[g]
        name, self.pal_kind, g2 = rng.choice([h for h in _HEROES if h[0] != self.hero])
        self.pal = name
        self.pal_he, self.pal_him, self.pal_his = _PRONOUNS[g2]
        self.place = rng.choice(_PLACES)
        self.obj = rng.choice(_OBJECTS)
        self.adj = rng.choice(_ADJ)
        self.good = rng.choice(_GOOD)
        self.bad = rng.choice(_BAD)
        self.food = rng.choice(_FOODS)
        self.weather = rng.choice(_WEATHER)
        self.parent = rng.choice(["mom", "dad", "grandma", "grandpa"])
        self.talk = rng.random() < 0.5  # about half the stories carry quoted dialogue
        self.lines: list[str] = []

    def pick(self, *options: str) -> str:
        return self.rng.choice(options)

    def say(self, narrated: str, speaker: str, speech: str, verb: str = "said") -> None:
        """A beat told either as narration or as quoted speech (dialogue stories)."""
        if self.talk:
            if self.rng.random() < 0.5:
                self.lines.append(f'"{speech}" {speaker} {verb}.')
            else:
                self.lines.append(f'{speaker} {verb}, "{speech}"')
        else:
            self.lines.append(narrated)

    def add(self, *options: str) -> None:
        self.lines.append(self.pick(*options))


def _detail(s: _Story) -> None:
    """A small, unpredictable detail: what makes each generated story worth remembering."""
    a = s.pick("a", "one", "the")
    s.add(
        f"{a} {s.pick(*_ADJ)} {s.pick(*_CREATURES)} {s.pick(*_ACTIONS)} {s.pick(*_SPOTS)}.",
        f"{s.hero} could hear {s.pick(*_SOUNDS)} {s.pick(*_SPOTS)}.",
        f"it smelled like {s.pick(*_SMELLS)}, and {s.hero} felt {s.pick(*_GOOD)}.",
        f"{s.he} saw {s.pick('a', 'a big', 'a tiny', 'an old')} {s.pick(*_ADJ)} {s.pick(*_OBJECTS)} {s.pick(*_SPOTS)}.",
        f"{s.his} {s.pick('hat', 'shirt', 'dress', 'shoes', 'coat', 'bag')} was {s.pick(*_ADJ)} "
        f"with {s.pick('dots', 'stripes', 'stars', 'flowers', 'hearts', 'patches')}.",
    )


def _opening(s: _Story) -> None:
    a = "an" if s.hero_kind[0] in "aeiou" else "a"
    s.add(
        f"once upon a time, there was {a} {s.pick('little ', 'small ', '')}{s.hero_kind} named {s.hero}.",
        f"one {s.weather} day, {a} {s.hero_kind} named {s.hero} went to {s.place}.",
        f"there once was {a} {s.hero_kind} called {s.hero} who lived near {s.place}.",
        f"{s.hero} was {a} {s.pick('happy', 'curious', 'kind', 'playful', 'busy')} {s.hero_kind}.",
    )
    s.add(
        f"{s.he} loved to play with {s.his} {s.adj} {s.obj}.",
        f"{s.he} had a best friend named {s.pal}, who was a {s.pal_kind}.",
        f"every day, {s.he} liked to {s.pick('run', 'jump', 'sing', 'dance', 'explore', 'draw')} "
        f"{s.pick('with ' + s.pal, 'in ' + s.place, 'all day long')}.",
        f"the sky was {s.pick('blue', 'grey', 'full of clouds', 'bright')} and the air was {s.weather}.",
    )
    for _ in range(s.rng.choice((0, 1, 1, 2))):
        _detail(s)


def _arc_lost(s: _Story) -> None:
    s.add(f"one day, {s.hero} could not find {s.his} {s.adj} {s.obj}.",
          f"but one morning, the {s.obj} was gone!", f"then {s.hero} lost {s.his} {s.obj} in {s.place}.")
    s.say(f"{s.hero} felt {s.bad} and started to cry.", s.hero, f"where is my {s.obj}?", "cried")
    s.add(f"{s.pal} the {s.pal_kind} came by and saw {s.hero}.", f"{s.his} friend {s.pal} heard {s.him}.")
    s.say(f"{s.pal} offered to help {s.him} look.", s.pal, f"don't be {s.bad}. i will help you find it!")
    s.add(f"they looked under the {s.pick('bed', 'table', 'tree', 'bush', 'bench')} and behind the "
          f"{s.pick('door', 'rock', 'wall', 'chair', 'fence')}.",
          f"they searched all over {s.place}.", f"they walked and looked and looked.")
    s.add(f"at last, {s.pal} found the {s.obj} {s.pick('in the grass', 'near the water', 'under a leaf', 'in a box')}.",
          f"finally, {s.hero} saw something {s.adj} in the {s.pick('mud', 'sand', 'grass', 'corner')}. it was the {s.obj}!")
    s.say(f"{s.hero} thanked {s.pal} and gave {s.pal_him} a big hug.", s.hero, f"thank you, {s.pal}! you are the best friend.")


def _arc_share(s: _Story) -> None:
    s.add(f"one day, {s.pal} saw {s.hero} playing with the {s.obj} at {s.place}.",
          f"at {s.place}, {s.pal} wanted to play with {s.hero}'s {s.adj} {s.obj} too.")
    s.say(f"{s.pal} asked if {s.pal_he} could have a turn.", s.pal, f"can i play with your {s.obj}, please?", "asked")
    s.add(f"at first, {s.hero} did not want to share.", f"{s.hero} held the {s.obj} tight. it was {s.his} favorite.")
    s.say(f"{s.hero} said no, and {s.pal} felt {s.bad}.", s.hero, f"no, it is mine!", "shouted")
    s.add(f"then {s.hero} saw that {s.pal} was {s.bad}.", f"{s.pal} walked away, looking {s.bad}.")
    s.add(f"{s.hero} thought about it and felt bad.", f"{s.hero} remembered what {s.his} {s.parent} said about sharing.")
    s.say(f"so {s.hero} gave {s.pal} a turn with the {s.obj}.", s.hero, f"here, {s.pal}. we can play together.")
    s.add(f"they played with the {s.obj} all afternoon and had so much fun.",
          f"they took turns and laughed until the sun went down.")


def _arc_brave(s: _Story) -> None:
    thing = s.pick("a big dog", "a dark cave", "a loud noise", "a tall slide", "the deep water", "a storm")
    s.add(f"one day, {s.hero} went to {s.place} and saw {thing}.", f"near {s.place}, there was {thing}.")
    s.add(f"{s.hero} was very {s.bad}.", f"{s.his} legs shook and {s.he} wanted to run home.")
    s.say(f"{s.he} told {s.his} {s.parent} that {s.he} was afraid.", s.hero, f"{s.parent}, i am scared!", "said")
    s.say(f"{s.his} {s.parent} told {s.him} to be brave and take a deep breath.", s.parent,
          f"you can do it, {s.hero}. just be brave.")
    s.add(f"{s.hero} took a deep breath and stepped forward.", f"so {s.hero} counted to three and tried.")
    s.add(f"it was not so bad after all!", f"to {s.his} surprise, {thing} was not scary at all.",
          f"soon {s.he} was smiling.")
    s.say(f"{s.hero} felt {s.good} and proud.", s.hero, f"i did it! i am not {s.bad} anymore!", "laughed")


def _arc_make(s: _Story) -> None:
    thing = s.pick("a cake", "a sand castle", "a card", "a little house", "a kite", "a hat", "a picture", "a snowman")
    s.add(f"one day, {s.hero} wanted to make {thing} for {s.pal}.",
          f"{s.hero} had an idea. {s.he} would make {thing} for {s.his} {s.parent}.")
    s.add(f"{s.he} got {s.pick('paper', 'sand', 'flour', 'sticks', 'glue', 'paint', 'snow')} and "
          f"{s.pick('string', 'water', 'eggs', 'leaves', 'crayons', 'tape')}.",
          f"{s.he} worked hard all morning.")
    s.add(f"but it fell apart!", f"but it did not look right at first.", f"oh no, it broke into pieces.")
    s.say(f"{s.hero} was {s.bad}, but {s.he} did not give up.", s.hero, "i will try again!", "said")
    s.add(f"{s.he} tried again, slowly and carefully.", f"this time {s.pal} helped {s.him}.")
    s.add(f"at last, {thing} was ready. it was {s.adj} and {s.pick('beautiful', 'perfect', 'strong', 'lovely')}.",
          f"finally it was done, and it looked great.")
    s.say(f"everyone loved it and {s.hero} felt {s.good}.", s.pal, f"wow, {s.hero}! i love it!", "said")


def _arc_trip(s: _Story) -> None:
    s.add(f"one day, {s.hero} and {s.his} {s.parent} went to {s.place}.",
          f"on a {s.weather} morning, {s.hero} and {s.pal} went on a trip to {s.place}.")
    s.say(f"{s.hero} was excited to see what was there.", s.hero, f"i can't wait to see {s.place}!", "said")
    s.add(f"they saw {s.pick('birds', 'fish', 'flowers', 'ducks', 'boats', 'trees', 'butterflies')} and "
          f"{s.pick('a big tree', 'a rainbow', 'a little house', 'a cow', 'a bridge', 'a tall tower')}.",
          f"there were many things to see and do.")
    s.add(f"{s.hero} found a {s.adj} {s.obj} on the ground.", f"they ate {s.food} under a tree.",
          f"{s.hero} ran and played until {s.he} was tired.")
    s.say(f"{s.hero} asked if they could come back again.", s.hero, f"can we come back tomorrow?", "asked")
    s.say(f"{s.his} {s.parent} smiled and said yes.", s.parent, "yes, we can come back soon.")


def _arc_help(s: _Story) -> None:
    trouble = s.pick("stuck in a tree", "hurt", "lost", "hungry", "cold", "stuck in the mud")
    s.add(f"one day, {s.hero} heard a small sound near {s.place}.", f"while walking, {s.hero} saw {s.pal}.")
    s.add(f"it was {s.pal} the {s.pal_kind}, and {s.pal_he} was {trouble}.", f"{s.pal} was {trouble} and {s.bad}.")
    s.say(f"{s.pal} asked {s.hero} for help.", s.pal, "please help me!", "cried")
    s.say(f"{s.hero} said {s.he} would help.", s.hero, "don't worry, i will help you.")
    s.add(f"{s.hero} thought hard. then {s.he} used {s.his} {s.obj} to help.",
          f"{s.hero} ran to get {s.his} {s.parent}, who came to help.",
          f"{s.hero} shared {s.his} {s.food} and a warm blanket.")
    s.add(f"soon {s.pal} was safe and {s.good}.", f"after a while, everything was fine again.")
    s.say(f"{s.pal} thanked {s.hero} many times.", s.pal, f"thank you, {s.hero}. you are so kind!")


def _arc_mess(s: _Story) -> None:
    s.add(f"one day, {s.hero} was playing inside with {s.his} {s.obj}.", f"{s.hero} was running in the house.")
    s.add(f"{s.he} bumped the table and a {s.pick('vase', 'cup', 'plate', 'jar', 'lamp')} fell and broke.",
          f"{s.he} spilled {s.food} all over the floor.")
    s.add(f"{s.hero} was {s.bad}. {s.he} wanted to hide.", f"{s.hero} thought about not telling anyone.")
    s.say(f"but {s.he} told {s.his} {s.parent} the truth.", s.hero, f"{s.parent}, i am sorry. it was me.")
    s.say(f"{s.his} {s.parent} was not angry and thanked {s.him} for being honest.", s.parent,
          "thank you for telling the truth. let's clean it up together.")
    s.add(f"they cleaned it up together.", f"together, they made everything clean again.")
    s.add(f"{s.hero} felt {s.good} and light inside.", f"after that, {s.hero} was more careful.")


_ARCS = (_arc_lost, _arc_share, _arc_brave, _arc_make, _arc_trip, _arc_help, _arc_mess)


def _ending(s: _Story) -> None:
    s.add(f"from that day on, {s.hero} and {s.pal} were best friends.", f"{s.hero} went home {s.good} that night.",
          f"that night, {s.hero} dreamed about {s.place}.", f"{s.hero} always remembered that day.",
          f"and they all lived happily ever after.", f"it was the best day ever.")
    if s.rng.random() < 0.3:
        s.lines.append(f"the moral of the story is that {s.pick(*_MORALS)}")


def generate_story(rng: random.Random) -> str:
    """One TinyStories-style story: an opening, one or two plot arcs, an ending."""
    s = _Story(rng)
    _opening(s)
    arcs = rng.sample(_ARCS, k=1 if rng.random() < 0.6 else 2)
    for arc in arcs:
        arc(s)
        if rng.random() < 0.5:
            _detail(s)
    _ending(s)
    paragraphs, para = [], []
    for line in s.lines:
        para.append(line)
        if rng.random() < 0.25:
            paragraphs.append(" ".join(para))
            para = []
    if para:
        paragraphs.append(" ".join(para))
    return "\n".join(paragraphs)


def generate_stories(n: int, seed: int = 0) -> list[str]:
    """``n`` generated stories, the same for the same seed."""
    rng = random.Random(seed)
    return [generate_story(rng) for _ in range(n)]


# ---------------------------------------------------------------- splits


@dataclass(frozen=True)
class StorySplits:
    train: list[str]
    val: list[str]
    test: list[str]
    source: str  # e.g. "file:/data/ts.txt", "hub:roneneldan/TinyStories", "generator(seed=0)"


def load_splits(data: str | None, n_train: int, n_val: int, n_test: int) -> StorySplits:
    """Stories from ``data`` (a path, ``"hub"``, ``"generator"``; ``None`` picks the first source that works)."""
    need = n_train + n_val + n_test
    if data is None:
        if hub_reachable():
            try:
                return _split(load_hub_stories(), f"hub:{HUB_DATASET}/{HUB_FILE}", n_train, n_val, n_test)
            except Exception as e:  # a reachable hub that fails to serve the file: say so, then go offline
                warnings.warn(f"could not load {HUB_DATASET} from the hub ({e}); using the offline story generator")
        data = "generator"
    if data == "hub":
        return _split(load_hub_stories(), f"hub:{HUB_DATASET}/{HUB_FILE}", n_train, n_val, n_test)
    if data == "generator":
        return _split(generate_stories(need, seed=0), "generator(seed=0)", n_train, n_val, n_test)
    path = Path(data).expanduser().resolve()
    return _split(read_stories(path), f"file:{path}", n_train, n_val, n_test)


def _split(stories: list[str], source: str, n_train: int, n_val: int, n_test: int) -> StorySplits:
    need = n_train + n_val + n_test
    if len(stories) < need:
        raise ValueError(
            f"{source} has {len(stories)} stories but n_train + n_val + n_test = {need}; "
            "lower n_train, n_val or n_test, or pass a larger data file"
        )
    order = list(range(len(stories)))
    random.Random(DATA_SPLIT_SEED).shuffle(order)
    pick = [stories[i] for i in order[:need]]
    return StorySplits(pick[:n_train], pick[n_train:n_train + n_val], pick[n_train + n_val:], source)


# ---------------------------------------------------------------- tokenizer and token caches


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:20]


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE trained on ``texts``, cached on disk; returns ``(tokenizer, was_cached)``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    key = _digest(f"bpe-v{TOKENIZER_VERSION}", str(vocab_size), *texts)
    path = cache_dir() / "tokenizers" / f"bpe{vocab_size}-{key}.json"
    if path.is_file():
        return Tokenizer.from_file(str(path)), True
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOT, PAD], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tok.save(str(tmp))
    os.replace(tmp, path)
    return tok, False


@dataclass(frozen=True)
class TokenSplit:
    """One split as token sequences ``[EOT] + story + [EOT]`` stored flat, plus where dialogue shows.

    ``quote_at[i]`` is the position in sequence i of the token that closes the story's
    first quoted speech (``NO_QUOTE`` when there is none): a window of the first T
    tokens shows dialogue exactly when ``quote_at < T``.
    """

    tokens: torch.Tensor  # (total,) int32, all sequences back to back
    offsets: torch.Tensor  # (n + 1,) int64, sequence i is tokens[offsets[i]:offsets[i + 1]]
    dialogue: torch.Tensor  # (n,) float32, 1.0 when story i contains quoted speech anywhere
    quote_at: torch.Tensor  # (n,) int64

    def __len__(self) -> int:
        return len(self.dialogue)

    @property
    def lengths(self) -> torch.Tensor:  # (n,)
        return self.offsets[1:] - self.offsets[:-1]


@dataclass(frozen=True)
class StoryTokens:
    train: TokenSplit
    val: TokenSplit
    test: TokenSplit
    vocab_size: int
    eot: int
    pad: int
    source: str
    tokenizer_cached: bool
    tokens_cached: bool


def _encode(tok, stories: list[str], eot: int) -> TokenSplit:
    encs = tok.encode_batch(stories)
    ids = [[eot] + enc.ids + [eot] for enc in encs]
    lengths = torch.tensor([len(x) for x in ids], dtype=torch.int64)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    flat = torch.tensor([t for x in ids for t in x], dtype=torch.int32)
    dialogue = torch.tensor([float(has_dialogue(s)) for s in stories])
    quote_at = torch.tensor([_quote_at(s, enc.offsets) for s, enc in zip(stories, encs)], dtype=torch.int64)
    return TokenSplit(flat, offsets, dialogue, quote_at)


def _quote_at(text: str, spans: list[tuple[int, int]]) -> int:
    """Sequence position (after the leading EOT) of the token holding the first quoted speech's closing quote."""
    m = _QUOTED.search(text)
    if m is None:
        return NO_QUOTE
    close = m.end() - 1  # character index of the closing quote
    i = next(i for i, (_, end) in enumerate(spans) if end > close)
    return i + 1


def load_tokens(data: str | None, n_train: int, n_val: int, n_test: int, vocab_size: int) -> StoryTokens:
    """Load stories, train (or reuse) the tokenizer, encode (or reuse) the three splits."""
    splits = load_splits(data, n_train, n_val, n_test)
    tok, tok_cached = train_tokenizer(splits.train, vocab_size)
    eot, pad = tok.token_to_id(EOT), tok.token_to_id(PAD)
    key = _digest(f"tokens-v{TOKENS_VERSION}", tok.to_str(), *splits.train, "|val|", *splits.val, "|test|", *splits.test)
    path = cache_dir() / "tokens" / f"{key}.pt"
    tokens_cached = path.is_file()
    if tokens_cached:
        parts = torch.load(path, weights_only=True)
        encoded = {name: TokenSplit(**parts[name]) for name in ("train", "val", "test")}
    else:
        encoded = {name: _encode(tok, getattr(splits, name), eot) for name in ("train", "val", "test")}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        torch.save({name: vars(s) for name, s in encoded.items()}, tmp)
        os.replace(tmp, path)
    return StoryTokens(encoded["train"], encoded["val"], encoded["test"], tok.get_vocab_size(), eot, pad,
                       splits.source, tok_cached, tokens_cached)


# ---------------------------------------------------------------- windows
#
# One example per story: its first ``context + 1`` tokens (the story start, padded
# when the story is shorter). A training set of n stories is then exactly n
# sequences, which is what lets a small model memorise it within the horizon.


def sample_windows(split: TokenSplit, batch: int, context: int, pad: int, gen: torch.Generator):
    """A random batch of ``batch`` stories (drawn with replacement by ``gen``).

    Returns inputs (B, T), targets (B, T) with -1 on padding, dialogue labels (B,)
    (1.0 when quoted speech shows inside the window) and the index of each
    window's last real input position (B,).
    """
    idx = torch.randint(len(split), (batch,), generator=gen)  # (B,)
    return story_windows(split, idx, context, pad)


def fixed_windows(split: TokenSplit, n: int, context: int, pad: int):
    """The windows of the first ``n`` stories of ``split`` (all of them when ``n`` exceeds its size)."""
    return story_windows(split, torch.arange(min(n, len(split))), context, pad)


def story_windows(split: TokenSplit, idx: torch.Tensor, context: int, pad: int):
    B = len(idx)
    x = torch.full((B, context), pad, dtype=torch.long)  # (B, T)
    y = torch.full((B, context), -1, dtype=torch.long)  # (B, T)
    last = torch.zeros(B, dtype=torch.long)  # (B,)
    for b in range(B):
        start = int(split.offsets[idx[b]])
        stop = min(start + context + 1, int(split.offsets[idx[b] + 1]))
        seq = split.tokens[start:stop].long()  # (<= T + 1,)
        n = len(seq) - 1
        x[b, :n] = seq[:-1]
        y[b, :n] = seq[1:]
        last[b] = n - 1
    shows_dialogue = (split.quote_at[idx] < context).float()  # (B,)
    return x, y, shows_dialogue, last
