"""Number formats of the reports: one place, so the HTML, the Markdown and the tests agree.

Rates are percentages with 2 decimals, money is US dollars with 2–4 decimals (trailing
zeros beyond the cents dropped), counts have thousands separators. Rounding is half away
from zero on the exact binary value (Decimal), so 0.125 → "0.13" and not "0.12".
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

DASH = "—"


def _q(v: float, places: int) -> Decimal:
    return Decimal(v).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def count(n: int | None) -> str:
    return DASH if n is None else f"{int(n):,}"


def pct(frac: float | None, places: int = 2) -> str:
    """A rate given as a fraction (0.4567) → "45.67%"."""
    return DASH if frac is None else f"{_q(frac * 100, places):,}%"


def money(v: float | None) -> str:
    """US dollars, 2–4 decimals: 1234.5 → "$1,234.50", 1.10137 → "$1.1014"."""
    if v is None:
        return DASH
    d = _q(v, 4)
    sign = "-" if d < 0 else ""
    whole, frac = f"{abs(d):.4f}".split(".")
    return f"{sign}${int(whole):,}.{frac.rstrip('0').ljust(2, '0')}"


def points(delta_frac: float | None) -> str:
    """A change of a rate, in percentage points: 0.0123 → "+1.23 pp"."""
    if delta_frac is None:
        return DASH
    d = _q(delta_frac * 100, 2)
    return f"{'+' if d > 0 else '−' if d < 0 else '±'}{abs(d)} pp"


def change(cur: float | None, prev: float | None) -> str:
    """Relative change: (12, 10) → "+20.0%"; "—" without a base."""
    if cur is None or not prev:
        return DASH
    d = _q((cur - prev) / prev * 100, 1)
    return f"{'+' if d > 0 else '−' if d < 0 else '±'}{abs(d):,}%"
