"""Gains written for the objective's sign, and the check that validation and test agree on the selection.

A return of -149 against -320 is 171 *higher* and *better*; "+53%" alone would read as
a percentage of a negative number. So a change is always written as its absolute
difference, the word higher/lower, better/worse in the objective's direction, and,
when the reference is not 0, the difference as a share of the reference's magnitude
(the page's header writes the same text, ``gainText`` in ``serve/static/app.js``).
"""

from __future__ import annotations

from dataclasses import dataclass

from searchmgr.analysis.run import RunData
from searchmgr.tasks import Objective

# validation and test disagree when test keeps less than this share of the validation gain over the fixed recipe
KEPT_SHARE = 0.5
# ... and the shortfall is at least this share of |fixed| (a small gain halved is noise, not a disagreement)
SHORTFALL_SHARE = 0.05
# without a fixed recipe's test score: when the selected schedule's test is this far from its validation (of |val|)
GAP_SHARE = 0.25


def _g(v: float) -> str:
    return f"{v:.4g}"


def change_text(new: float | None, old: float | None, objective: Objective, name: str = "fixed") -> str:
    """``"171 higher, better (53.44% of |fixed|)"``; ``"-"`` when a value is missing."""
    if new is None or old is None:
        return "-"
    diff = new - old
    if diff == 0:
        return f"equal to {name}"
    better = objective.utility(new) > objective.utility(old)
    rel = f" ({_g(100 * abs(diff) / abs(old))}% of |{name}|)" if old != 0 else ""
    return f"{_g(abs(diff))} {'lower' if diff < 0 else 'higher'}, {'better' if better else 'worse'}{rel}"


def improvement(run: RunData) -> float | None:
    """The best schedule's gain over the fixed recipe on validation, as a share of |fixed| (positive = better)."""
    best, fixed = run.best_leaf(), run.fixed_path()[-1]
    if best is None or fixed.depth == 0 or fixed.val_score is None or best.val_score is None or fixed.val_score == 0:
        return None
    u = run.objective.utility
    return (u(best.val_score) - u(fixed.val_score)) / abs(fixed.val_score)


@dataclass(frozen=True)
class Agreement:
    """Whether the selected schedule's test score bears out its validation score."""

    ok: bool
    text: str


def val_test_agreement(best_val: float | None, best_test: float | None, fixed_val: float | None,
                       fixed_test: float | None, objective: Objective) -> Agreement | None:
    """Flag a selection that test does not bear out; ``None`` when there is no test score to judge by.

    With the fixed recipe's scores: disagree when test keeps less than ``KEPT_SHARE`` of the validation
    gain over the fixed recipe (a reversal included) and falls short of it by ``SHORTFALL_SHARE`` of
    |fixed validation| or more. Without them: disagree when the selected schedule's
    test lies more than ``GAP_SHARE`` of |val| from its validation score."""
    if best_val is None or best_test is None:
        return None
    u = objective.utility
    if fixed_val is not None and fixed_test is not None:
        gain_val, gain_test = u(best_val) - u(fixed_val), u(best_test) - u(fixed_test)
        short = gain_val - gain_test
        if gain_val > 0 and gain_test < KEPT_SHARE * gain_val and short >= SHORTFALL_SHARE * abs(fixed_val):
            return Agreement(False, (
                f"validation and test disagree: the selected schedule beats the fixed recipe by {_g(gain_val)} on "
                f"validation ({_g(best_val)} vs {_g(fixed_val)}) but by {_g(gain_test)} on test ({_g(best_test)} vs "
                f"{_g(fixed_test)}); the selection may have picked validation noise. Re-evaluate the top schedules "
                "(select.reevaluate=K) or evaluate on more validation data."))
        if gain_val <= 0:
            return Agreement(True, "the selected schedule does not beat the fixed recipe on validation; on test it "
                                   f"is {change_text(best_test, fixed_test, objective)}.")
        return Agreement(True, f"no large disagreement: against the fixed recipe the selected schedule is "
                               f"{change_text(best_val, fixed_val, objective)} on validation and "
                               f"{change_text(best_test, fixed_test, objective)} on test.")
    gap = abs(best_test - best_val)
    if best_val != 0 and gap > GAP_SHARE * abs(best_val):
        return Agreement(False, (
            f"validation and test disagree: the selected schedule scored {_g(best_val)} on validation but "
            f"{_g(best_test)} on test ({_g(100 * gap / abs(best_val))}% of |validation|). Re-evaluate the top "
            "schedules (select.reevaluate=K) or evaluate on more validation data."))
    return Agreement(True, f"validation {_g(best_val)} and test {_g(best_test)} of the selected schedule are close.")
