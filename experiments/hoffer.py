"""Hoffer et al. 2017, "Train longer, generalize better": ghost BN + sqrt LR scaling + more epochs.

    python -m lbbench.sweep experiments/hoffer.py [--quick]

Time on a 2-core CPU: quick ≈ 20 s (tiny BN-MLP, 1-2 epochs, B 256/2048, 3 runs: sb, lb, all remedies); full ≈ 25 min
(F1, 10 epochs; measured ~14 s/epoch at B=256, ~5 s/epoch assumed at B=4096; the 4×-epochs arm
runs 40 epochs; 2 seeds).

Momentum SGD (0.9), base lr 0.1 at B=256, F1 (5×512 MLP with BatchNorm). Arms, adding one remedy at
a time at B=4096:
- sb: B=256 reference;              - lb: B=4096, same lr and epochs (the gap);
- lb_sqrt: lr × sqrt(B/256) (Hoffer §4.1);
- lb_gbn_sqrt: + ghost BatchNorm over 128 examples (§4.2);
- lb_gbn_sqrt_long: + 4× the epochs ("regime adaptation", §5). Matching the small batch's number of
  *steps* would need 16× the epochs, infeasible here, so 4× is a partial regime adaptation.
"""

from lbbench.config import Config
from lbbench.sweep import env_dataset

NAME = "hoffer"


def base_config(quick: bool) -> Config:
    return Config(dataset=env_dataset(), model="tiny_bn_mlp" if quick else "f1", optimizer="momentum",
                  momentum=0.9, learning_rate=0.1, base_batch_size=256, schedule="constant",
                  epochs=1 if quick else 10, sharpness=False, save_params=False,
                  noise_scale_groups=1 if quick else 4)


def grid(quick: bool) -> list[dict]:
    large, epochs = (2048, 1) if quick else (4096, 10)
    longer = 2 if quick else 4
    arms = (("sb", {"batch_size": 256}),
            ("lb", {"batch_size": large}),
            ("lb_sqrt", {"batch_size": large, "lr_scaling": "sqrt"}),
            ("lb_gbn_sqrt", {"batch_size": large, "lr_scaling": "sqrt", "ghost_batch_size": 128}),
            ("lb_gbn_sqrt_long", {"batch_size": large, "lr_scaling": "sqrt", "ghost_batch_size": 128,
                                  "epochs": epochs * longer}))
    seeds = (0,) if quick else (0, 1)
    if quick:  # the baseline pair and the full remedy only
        arms = tuple(a for a in arms if a[0] in ("sb", "lb", "lb_gbn_sqrt_long"))
    return [{**over, "seed": s, "run_name": f"{arm}_s{s}"} for arm, over in arms for s in seeds]
