import pytest

from searchmgr.config import ConfigError, build_config, parse_overrides


def test_overrides_are_typed_and_nested():
    data = parse_overrides(["task=toy", "seed=3", "budget.steps=400", "uct.c=0.25", "budget.nodes=none",
                            "stopper.name=none", "manager.name=\"random\"", "preset=smoke", "data=stories.txt"])
    assert data == {"task": "toy", "seed": 3, "budget": {"steps": 400, "nodes": None}, "uct": {"c": 0.25},
                    "stopper": {"name": "none"}, "manager": {"name": "random"}, "task_options": {"preset": "smoke", "data": "stories.txt"}}
    cfg = build_config(data)
    assert cfg.stopper.name == "none" and cfg.budget.steps == 400


@pytest.mark.parametrize("word,needle", [
    ("budget", "is not key=value"), ("a.b.c=1", "nested too deep"), ("nope.x=1", "unknown section"),
    ("uct.cc=1", "unknown key 'uct.cc'"), ("=3", "is not key=value"),
])
def test_bad_override_words(word, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_overrides([word])


def test_values_out_of_range_name_the_field():
    with pytest.raises(ConfigError, match="uct.k_max"):
        build_config(parse_overrides(["task=toy", "uct.k_max=0"]))
