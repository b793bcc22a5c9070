"""One number format for every report: the same value always prints the same way.

- plain numbers: 4 significant digits, trailing zeros dropped (`0.9424`, `0.1`, `7440`, `2.3e-05`
  when tiny); whole numbers of 5 digits or more get thousands separators (`60,000`), so batch
  sizes read `4096` everywhere, in tables, tick labels and text alike;
- mean ± s.d.: the s.d. to 2 significant digits and the mean to the same decimal place
  (`0.9424 ± 0.0019`, `7440 ± 4700`), so no digit is printed that the spread makes meaningless.
"""

from __future__ import annotations

import math

DASH = "—"


def num(x, digits: int = 4) -> str:
    """`x` to `digits` significant digits; None/NaN as a dash."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return DASH
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return whole(x)
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag >= 7:
        mant, exp = f"{x:.{digits - 1}e}".split("e")
        return f"{_strip(mant)}e{exp}"
    if mag >= digits - 1:
        return whole(round(x))
    if mag < -4:
        mant, exp = f"{x:.{digits - 1}e}".split("e")
        return f"{_strip(mant)}e{exp}"
    return _strip(f"{x:.{max(digits - 1 - mag, 0)}f}")


def whole(n: int) -> str:
    """An integer: `4096`, `60,000` (separators from 5 digits on)."""
    return f"{n:,}" if abs(n) >= 10_000 else str(n)


def _strip(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def mean_sd(mean, sd) -> str:
    """`mean ± sd` with the mean rounded where the s.d.'s second significant digit is."""
    if mean is None:
        return DASH
    if sd is None or sd == 0 or not math.isfinite(sd):
        return num(mean)
    decimals = max(0, 1 - math.floor(math.log10(abs(sd))))
    if decimals > 6:
        return f"{num(mean)} ± {sd:.1e}"
    if decimals == 0:
        return f"{whole(round(mean))} ± {whole(round(round(sd, 1 - math.floor(math.log10(abs(sd))))))}"
    return f"{mean:.{decimals}f} ± {sd:.{decimals}f}"


def mean_interval(mean, low, high) -> str:
    """`mean [low, high]`, all three to the decimal place of the half-width's second significant digit."""
    if mean is None:
        return DASH
    if low is None or high is None or not math.isfinite(high - low) or high <= low:
        return num(mean)
    decimals = max(0, 1 - math.floor(math.log10((high - low) / 2)))
    return f"{mean:.{decimals}f} [{low:.{decimals}f}, {high:.{decimals}f}]"
