"""Fabricated edge-of-stability results with known answers (no training), shared by the study, report
and experiment tests of lbbench's edge-of-stability analysis."""

from lbbench.config import Config


def fake(optimizer, batch_size, lr, steps, curvature, subset=400, status="completed", momentum=0.9, loss=None):
    """A result dict with the fields the analysis reads; `curvature` maps column -> values at steps
    10, 20, ...; `loss=None` leaves the key out, as in results written before --loss existed."""
    n = len(next(iter(curvature.values())))
    cfg = Config(
        optimizer=optimizer, batch_size=batch_size, learning_rate=lr, train_subset=subset, momentum=momentum
    ).to_dict()
    if loss is None:
        cfg.pop("loss")
    else:
        cfg["loss"] = loss
    return {
        "status": status,
        "config": cfg,
        "timing": {"steps": steps},
        "final": {"train_loss": 0.5},
        "history": {"step": [steps], "train_loss": [0.5]},
        "curvature": {"step": [10 * (i + 1) for i in range(n)], **curvature},
    }


# Ten measurements at steps 10..100 of a 100-step run: the second half is steps 60..100 (step 50 = T/2
# is excluded), i.e. the last five values.
FIRST = [0.1, 0.2, 0.3, 0.4, 5.0]  # the fifth (step 50) would break every statistic if it were counted


def fake_results() -> dict:
    return {
        # GD, eta 0.1: second-half ratios 1.0, 1.1, 1.3, 0.9, 0.75 -> 3 of 5 within +-20 %, median 1.0
        "gd_lr0p1": fake(
            "sgd",
            400,
            0.1,
            100,
            {
                "lambda_max_ratio": FIRST + [1.0, 1.1, 1.3, 0.9, 0.75],
                "lambda_max": [20 * v for v in FIRST + [1.0, 1.1, 1.3, 0.9, 0.75]],
                "batch_sharpness_ratio": [0.5] * 10,
            },
        ),
        # GD, eta 0.2: all within (one None dropped) -> stayed within; median lambda_max 10.5
        "gd_lr0p2": fake(
            "sgd",
            400,
            0.2,
            100,
            {
                "lambda_max_ratio": FIRST + [1.05, None, 1.05, 1.05, 1.05],
                "lambda_max": FIRST + [10.5, None, 10.5, 10.5, 10.5],
                "batch_sharpness_ratio": FIRST + [1.0, 1.0, 1.0, 1.0, 1.0],
            },
        ),
        # SGD at eta 0.2: lambda_max medians 4 (B=20) < 8 (B=100) < 10.5 (GD) -> falls as B shrinks
        "sgd_b20": fake(
            "sgd",
            20,
            0.2,
            100,
            {
                "batch_sharpness_ratio": FIRST + [0.9, 1.0, 1.1, 1.0, 1.3],
                "lambda_max": FIRST + [3, 4, 5, 4, 4],
                "lambda_max_ratio": [0.4] * 10,
            },
        ),
        "sgd_b100": fake(
            "sgd",
            100,
            0.2,
            100,
            {
                "batch_sharpness_ratio": FIRST + [0.95] * 5,
                "lambda_max": FIRST + [8, 8, 7, 9, 8],
                "lambda_max_ratio": [0.8] * 10,
            },
        ),
        # Adam eta 0.01 (beta1 0.9: threshold 3800): ratios 0.5, 1, 1, 1, 2 -> median 1, 3 of 5 within
        "adam_lr0p01": fake(
            "adam",
            400,
            0.01,
            100,
            {"preconditioned_ratio": FIRST + [0.5, 1.0, 1.0, 1.0, 2.0], "lambda_max": [1.0] * 10},
        ),
        # MSE GD eta 0.2 (the SGD rate: must not join the SGD family): 4 of 5 within -> hovers, yes
        "gd_mse_lr0p2": fake(
            "sgd",
            400,
            0.2,
            100,
            {"lambda_max_ratio": FIRST + [0.95, 1.0, 1.5, 1.1, 1.05], "lambda_max": [9.0] * 10},
            loss="mse",
        ),
        # MSE GD eta 0.3: 3 of 5 within -> no; median 1.2 (1.2 counts as within)
        "gd_mse_lr0p3": fake(
            "sgd",
            400,
            0.3,
            100,
            {"lambda_max_ratio": FIRST + [1.2, 1.3, 1.4, 1.0, 1.1], "lambda_max": [8.0] * 10},
            loss="mse",
        ),
        "sgd_mse_b20": fake("sgd", 20, 0.2, 100, {"lambda_max": [1.0] * 10}, loss="mse"),  # not an arm
        "other": fake("lars", 400, 0.1, 100, {"lambda_max": [1.0] * 10}),
    }
