"""The block a run ends with: what it reached and what was measured, each line with its meaning.

One value a line, the definition in a few words beside it, so a reader who has not read the papers
can still read it once and know what each number is (Keskar et al. 2017 for ε-sharpness;
McCandlish et al. 2018 for B_simple, a rough proxy of the critical batch size).
"""

from __future__ import annotations

from lbbench.report.numfmt import mean_sd, num


def _eps_line(eps: dict) -> list[tuple[str, str, str]]:
    """One row per ε-sharpness value: full space first, then the random subspace."""
    rows = []
    for key in sorted(eps, key=lambda k: (not k.startswith("full"), k)):
        space, _, size = key.partition("_")
        where = "full space" if space == "full" else "random subspace"
        rows.append(
            (
                "ε-sharpness",
                f"{num(eps[key])} %",
                f"largest relative loss rise in a box of ±{size}·(|w|+1), {where} (Keskar)",
            )
        )
    return rows


def _measured_rows(result: dict) -> list[tuple[str, str, str]]:
    s = result.get("sharpness") or {}
    rows = []
    if s.get("lambda_max") is not None:
        rows.append(("λ_max", num(s["lambda_max"]), "largest Hessian eigenvalue of the training loss"))
    if s.get("hessian_trace") is not None:
        rows.append(("Hessian trace", mean_sd(s["hessian_trace"], s.get("hessian_trace_stderr")), "± its s.e."))
    rows += _eps_line(s.get("epsilon_sharpness") or {})
    b = (result.get("noise_scale") or {}).get("b_simple")
    if b is not None:
        rows.append(("B_simple", num(b), "gradient noise scale ≈ critical batch size (a rough proxy)"))
    return rows


def _time_row(result: dict) -> tuple[str, str, str] | None:
    t = result.get("timing") or {}
    if t.get("total_s") is None:
        return None
    parts = [f"training {t['train_s']:.1f} s" if t.get("train_s") else None]
    parts.append(f"compiling {t['compile_s']:.1f} s" if t.get("compile_s") else None)
    measured = sum((i.get("seconds") or 0.0) for i in (t.get("instruments") or {}).values())
    parts.append(f"measuring {measured:.1f} s" if measured else None)
    return ("wall time", f"{t['total_s']:.1f} s", ", ".join(p for p in parts if p))


def rows(result: dict) -> list[tuple[str, str, str]]:
    """(name, value, meaning) rows of a finished run's summary."""
    f = result["final"]
    acc = [f"train {f['train_accuracy']:.4f}"]
    if f.get("val_accuracy") is not None:
        acc.append(f"validation {f['val_accuracy']:.4f}")
    acc.append(f"test {f['test_accuracy']:.4f}")
    out = [
        ("accuracy", ", ".join(acc), ""),
        ("gap", f"{f['generalization_gap']:+.4f}", "train − test accuracy"),
        *_measured_rows(result),
    ]
    time_row = _time_row(result)
    return out + ([time_row] if time_row else [])


def block(result: dict) -> list[str]:
    """The summary as aligned lines (without the `lbbench:` prefix)."""
    table = rows(result)
    w_name = max(len(r[0]) for r in table)
    w_value = max(len(r[1]) for r in table if r[2])  # a row without a meaning does not widen the column
    return [f"  {n:<{w_name}}  {v:<{w_value}}  {m}".rstrip() for n, v, m in table]


def one_line(result: dict) -> str:
    """A seed's line in a `--seeds` group: validation and test accuracy, gap, λ_max."""
    f, s = result["final"], result.get("sharpness") or {}
    parts = [f"validation accuracy {f['val_accuracy']:.4f}"] if f.get("val_accuracy") is not None else []
    parts += [f"test accuracy {f['test_accuracy']:.4f}", f"gap {f['generalization_gap']:+.4f}"]
    if s.get("lambda_max") is not None:
        parts.append(f"λ_max {num(s['lambda_max'])}")
    return ", ".join(parts)
