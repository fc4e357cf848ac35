"""When to end a trial early: collapse (paper Fig. 7) held for ``patience`` epochs.

Divergence (a non-finite loss) is raised by the trainer itself as ``NonFiniteLossError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class StopRules:
    patience: int = 3
    collapse: bool = True
    nonfinite: bool = True
    tolerance: float = 0.02  # share of ln(out_dim) that counts as "at" ln K or at 0


def collapse_kind(teacher_entropy: float, kl: float, ln_k: float, tolerance: float) -> str | None:
    """'uniform' (entropy at ln K) or 'one-hot' (entropy at 0) when KL(teacher||student) is ~0 too."""
    if kl > tolerance * ln_k:
        return None
    if teacher_entropy >= (1 - tolerance) * ln_k:
        return "uniform"
    if teacher_entropy <= tolerance * ln_k:
        return "one-hot"
    return None


class CollapseMonitor:
    """Counts consecutive collapsed epochs; ``update`` returns a reason once ``patience`` is reached.

    Example::

        monitor = CollapseMonitor(StopRules(patience=3))
        for metrics in trainer.run():
            if reason := monitor.update(metrics):
                break
    """

    def __init__(self, rules: StopRules) -> None:
        self.rules, self.streak = rules, 0
        self.kind: str | None = None

    def update(self, metrics: dict[str, Any]) -> str:
        if not self.rules.collapse or "teacher_entropy" not in metrics:
            return ""
        ln_k = metrics["ln_out_dim"]
        kind = collapse_kind(metrics["teacher_entropy"], metrics["kl_teacher_student"], ln_k,
                             self.rules.tolerance)
        self.streak = 0 if kind is None else self.streak + 1 if kind == self.kind else 1
        self.kind = kind
        if kind and self.streak >= self.rules.patience:
            target = f"ln(out_dim)={ln_k:.3f}" if kind == "uniform" else "0"
            return (f"collapsed ({kind}): teacher entropy {metrics['teacher_entropy']:.3f} at {target} "
                    f"and KL(teacher||student) {metrics['kl_teacher_student']:.4f} for {self.streak} epochs "
                    f"(until epoch {metrics['epoch']})")
        return ""

    def flag(self, epoch: int) -> str:
        """This epoch's text (``collapse_flag``) while the collapse condition holds for fewer than
        ``patience`` epochs: true of this epoch only, as the trial goes on and may recover."""
        if not self.kind:
            return ""
        return (f"collapse condition ({self.kind}) holds at epoch {epoch}, {self.streak} epoch(s) in a row "
                f"(patience {self.rules.patience})")

    def flagged_reason(self, epoch: int) -> str:
        """The reason of a trial whose last epoch, ``epoch``, has a ``flag``: it ran its schedule, was not
        stopped, and still counts as collapsed (``statuses.FLAGGED``)."""
        if not self.kind:
            return ""
        return (f"flagged as collapsed ({self.kind}): the collapse condition held at its last epoch "
                f"{epoch} for {self.streak} epoch(s), fewer than patience {self.rules.patience}")

    def state_dict(self) -> dict[str, Any]:
        return {"streak": self.streak, "kind": self.kind}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.streak, self.kind = state["streak"], state["kind"]
