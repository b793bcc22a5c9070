"""Goyal et al. 2017: the linear scaling rule with and without gradual warmup, B = 64 … 8192.

    python -m lbbench.sweep experiments/goyal.py [--quick]

Time on a 2-core CPU: quick ≈ 20 s (tiny MLP, 1 epoch, B 256/2048, 4 runs); full ≈ 30 min
(MLP, 20 epochs, 8 batch sizes × 2 arms × 2 seeds; measured ~2.5 s/epoch at B=256; B=64 ~6 s,
B ≥ 512 ~1.5 s per epoch).

Momentum SGD (0.9), lr = 0.1 · B/256 (linear scaling, base 256), step decay ÷10 at 50 % and 75 % of
training in both arms. The arms differ only in the gradual warmup (Goyal §2.2): "warmup" ramps
linearly to the scaled rate over 3 epochs; "no_warmup" starts at the scaled rate (warmup_epochs=0,
i.e. constant after scaling until the first decay), which is where large B breaks down early in
training. Keeping the decays in both arms isolates the effect of warmup.
"""

from lbbench.config import Config
from lbbench.sweep import env_dataset

NAME = "goyal"


def base_config(quick: bool) -> Config:
    return Config(dataset=env_dataset(), model="tiny_mlp" if quick else "mlp", optimizer="momentum",
                  momentum=0.9, learning_rate=0.1, lr_scaling="linear", base_batch_size=256,
                  schedule="warmup_step", epochs=1 if quick else 20, sharpness=False, save_params=False,
                  noise_scale_groups=1 if quick else 4)


def grid(quick: bool) -> list[dict]:
    batches = (256, 2048) if quick else (64, 128, 256, 512, 1024, 2048, 4096, 8192)
    seeds = (0,) if quick else (0, 1)
    arms = (("warmup", 0.5 if quick else 3.0), ("no_warmup", 0.0))
    return [{"batch_size": b, "warmup_epochs": w, "seed": s, "run_name": f"{arm}_b{b}_s{s}"}
            for arm, w in arms for b in batches for s in seeds]
