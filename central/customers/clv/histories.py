"""Customer histories in RFM form, checked once so the models can trust them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike


class ClvError(ValueError):
    """Histories the models cannot use, or a fit that did not converge; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _column(name: str, values: ArrayLike) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ClvError("not_numeric", f"{name}: every value must be a number ({exc})") from None
    if array.ndim != 1:
        raise ClvError("not_one_dimensional", f"{name}: expected one value per customer, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ClvError("not_finite", f"{name}[{bad[0]}] = {array[bad[0]]}: every value must be a finite number")
    return array


def _refuse(name: str, array: FloatArray, wrong: npt.NDArray[np.bool_], reason: str, why: str) -> None:
    bad = np.flatnonzero(wrong)
    if bad.size:
        raise ClvError(reason, f"{name}[{bad[0]}] = {array[bad[0]]:g}: {why} ({bad.size} customers affected)")


@dataclass(frozen=True)
class Histories:
    """Per customer: repeat purchases, age at the last one, age now, and mean repeat spend (optional).

    Build it with :meth:`of`, which checks every value; the time unit is the caller's (days or weeks).
    """

    frequency: FloatArray
    recency: FloatArray
    age: FloatArray
    mean_spend: FloatArray | None = None

    @classmethod
    def of(
        cls, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike, mean_spend: ArrayLike | None = None
    ) -> Histories:
        """Checked histories; raises :class:`ClvError` naming the first bad customer and the reason."""
        x = _column("frequency", frequency)
        t_x = _column("recency", recency)
        t = _column("age", age)
        if not x.shape == t_x.shape == t.shape:
            raise ClvError(
                "length_mismatch", f"frequency, recency and age differ in length: {x.size}, {t_x.size}, {t.size}"
            )
        _refuse("frequency", x, x < 0, "negative_frequency", "repeat purchases cannot be negative")
        _refuse("frequency", x, x != np.floor(x), "fractional_frequency", "repeat purchases are a whole number")
        _refuse("age", t, t < 0, "negative_age", "the time since the first purchase cannot be negative")
        _refuse("recency", t_x, t_x < 0, "negative_recency", "the age at the last purchase cannot be negative")
        _refuse("recency", t_x, t_x > t, "recency_after_age", "the last purchase cannot come after today")
        _refuse(
            "recency",
            t_x,
            (x == 0) & (t_x != 0),
            "recency_without_repeat",
            "a customer without repeat purchases has recency 0",
        )
        spend = None
        if mean_spend is not None:
            spend = _column("mean_spend", mean_spend)
            if spend.shape != x.shape:
                raise ClvError("length_mismatch", f"mean_spend has {spend.size} values for {x.size} customers")
            _refuse("mean_spend", spend, spend < 0, "negative_spend", "spend cannot be negative")
            _refuse(
                "mean_spend",
                spend,
                (x > 0) & (spend == 0),
                "zero_spend",
                "a customer with repeat purchases spent something on them",
            )
        return cls(x, t_x, t, spend)

    def __len__(self) -> int:
        return int(self.frequency.size)
