"""Class weights λ_D, λ_U and the paper's band rule (SPEC.md §3)."""
from __future__ import annotations

BAND = (1.0, 4.0 / 3.0)  # λ_D·n_D / (λ_U·n_U) should lie here (the latest revision allows up to 3/2)


def auto_weights(n_d: int, n_u: int) -> tuple[float, float]:
    """The smallest weights (each >= 1) that put the ratio at the band's lower edge, 1:
    the minority class is raised, the majority keeps weight 1. One class only: (1, 1)."""
    if n_d == 0 or n_u == 0:
        return 1.0, 1.0
    if n_d >= n_u:
        return 1.0, n_d / n_u
    return n_u / n_d, 1.0


def band_advice(w_d: float, w_u: float, n_d: int, n_u: int) -> str | None:
    """A warning when the weights fall outside the band, with the fix; None when inside."""
    if n_d == 0 or n_u == 0:
        only = "desirable" if n_u == 0 else "undesirable"
        return (f"the training data holds {only} examples only ({n_d + n_u}); KTO still trains, "
                "but the band rule cannot balance classes: add examples of the other class if you can")
    ratio = (w_d * n_d) / (w_u * n_u)
    if BAND[0] <= ratio <= BAND[1]:
        return None
    a, b = auto_weights(n_d, n_u)
    return (f"λ_D·n_D/(λ_U·n_U) = {w_d:g}·{n_d}/({w_u:g}·{n_u}) = {ratio:.3g} is outside the paper's band "
            f"[1, 4/3]; --weights auto would use λ_D={a:.4g}, λ_U={b:.4g}")
