"""Layer-wise adaptive rates at large batch: momentum SGD vs LARS (You et al. 2017) vs LAMB (You et al. 2019).

    python -m lbbench.sweep experiments/lars.py [--quick]

Time on a 2-core CPU: quick ≈ 15 s (tiny MLP, 1 epoch, the 3 optimizers at B=2048, no B=256 reference);
full ≈ 5 min (MLP, 20 epochs: ~1 s/epoch at B=8192, the B=256 reference ~50 s per run; 2 seeds).

All runs: warmup (2 epochs) + cosine decay, as the LARS/LAMB papers do. Learning rates are the
usual ones for each method, not tuned here:
- momentum SGD: 0.1 at B=256, linearly scaled (3.2 at 8192, Goyal et al.);
- LARS: global lr 10 with trust coefficient η = 1e-3, so each layer moves ~1 % of its norm per
  step (You et al. use 2-30 with η = 1e-3); no LR scaling, the trust ratio does the scaling;
- LAMB: Adam-style update with per-layer trust ratio, lr 0.01 at large batch.
The momentum SGD run at B=256 is the small-batch reference the large-batch arms try to match.
"""

from lbbench.config import Config
from lbbench.sweep import env_dataset

NAME = "lars"
ARMS = (("momentum", {"optimizer": "momentum", "learning_rate": 0.1, "lr_scaling": "linear"}),
        ("lars", {"optimizer": "lars", "learning_rate": 10.0, "lr_scaling": "none", "trust_coefficient": 1e-3}),
        ("lamb", {"optimizer": "lamb", "learning_rate": 0.01, "lr_scaling": "none"}))


def base_config(quick: bool) -> Config:
    return Config(dataset=env_dataset(), model="tiny_mlp" if quick else "mlp", momentum=0.9,
                  base_batch_size=256, schedule="warmup_cosine", warmup_epochs=0.3 if quick else 2.0,
                  epochs=1 if quick else 20, sharpness=False, save_params=False,
                  noise_scale_groups=1 if quick else 4)


def grid(quick: bool) -> list[dict]:
    large = 2048 if quick else 8192
    seeds = (0,) if quick else (0, 1)
    points = [] if quick else [{**ARMS[0][1], "batch_size": 256, "seed": s, "run_name": f"momentum_b256_s{s}"}
                               for s in seeds]
    points += [{**over, "batch_size": large, "seed": s, "run_name": f"{arm}_b{large}_s{s}"}
               for arm, over in ARMS for s in seeds]
    return points
