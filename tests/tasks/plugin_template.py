"""A small plug-in task written the way a user would, as source text for tests to edit and write to a file."""

PLUGIN = '''
import torch
from searchmgr.surface import ActionSurface, Knob, Role, Scale
from searchmgr.tasks import Direction, Family, Objective, SearchDefaults, SegmentResult, Task


class LineTask(Task):
    name = "line"
    family = Family.SUPERVISED
    objective = Objective("val/loss", Direction.MINIMIZE, "test/loss")
    description = "Fit a noisy line with a linear model and SGD."
    presets = ("default", "smoke")

    @property
    def surface(self):
        return ActionSurface((Knob("lr", LR_LOW, LR_HIGH, Scale.LOG, 1.0, Role.OPTIMIZER, "SGD learning rate"),
                              Knob("noise", 0.0, 0.5, Scale.LINEAR, 0.5, Role.REGULARIZATION, "input noise")))

    def base_recipe(self):
        return {"lr": BASE_LR, "noise": 0.0}

    def search_defaults(self):
        return SearchDefaults(segment_steps=10, max_depth=2, budget_steps=60, eval_every=5)

    def init(self, seed):
        torch.manual_seed(seed)
        model = torch.nn.Linear(1, 1)
        return {"model": model.state_dict(), "rng": torch.get_rng_state()}

    def train_segment(self, checkpoint, recipe, segment, on_eval):
        g = torch.Generator().manual_seed(7)
        x = torch.randn(64, 1, generator=g)
        y = 3 * x + 0.1 * torch.randn(64, 1, generator=g)
        model = torch.nn.Linear(1, 1)
        model.load_state_dict(checkpoint["model"])
        torch.set_rng_state(checkpoint["rng"])
        opt = torch.optim.SGD(model.parameters(), lr=recipe["lr"])
        metrics = {}
        for i in range(1, segment.steps + STEP_ERROR + 1):
            xn = x + recipe["noise"] * torch.randn_like(x)
            loss = torch.nn.functional.mse_loss(model(xn), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i % segment.eval_every == 0 or i == segment.steps:
                with torch.no_grad():
                    val = torch.nn.functional.mse_loss(model(x[:32]), y[:32]).item()
                metrics = {"train/loss": loss.item(), VAL_KEY: val}
                if i == segment.steps and TEST:
                    metrics["test/loss"] = torch.nn.functional.mse_loss(model(x[32:]), y[32:]).item()
                if on_eval(segment.start_step + i, metrics) and i < segment.steps:
                    return SegmentResult(None, i, metrics, stopped=True)
        state = {"model": model.state_dict(), "rng": torch.get_rng_state()}
        return SegmentResult(state, segment.steps + STEP_ERROR, metrics)


def make_line():
    return LineTask()


line = LineTask()
not_a_task = dict(lr=1.0)
'''

GOOD = {"LR_LOW": "1e-3", "LR_HIGH": "0.3", "BASE_LR": "0.01", "STEP_ERROR": "0", "VAL_KEY": '"val/loss"',
        "TEST": "True"}


def plugin_source(**changes: str) -> str:
    text = PLUGIN
    for key, value in {**GOOD, **changes}.items():
        text = text.replace(key, value)
    return text
