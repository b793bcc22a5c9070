"""Ghost batch normalisation (Hoffer et al. 2017, Alg. 1): BatchNorm statistics over groups.

Under `jit` with a sharded batch, linen's BatchNorm normalises over the *global* batch, so a
"batch 4096" run would use 4096-example statistics whatever the device count. The group size is
therefore explicit: statistics are taken over consecutive groups of `ghost_batch_size` examples
(0 = the whole batch the module is handed, i.e. plain BatchNorm).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class GhostBatchNorm(nn.Module):
    """BatchNorm over ghost groups; running averages are the mean of the group statistics."""

    ghost_batch_size: int = 0
    momentum: float = 0.9
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x, train: bool):
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,))
        bias = self.param("bias", nn.initializers.zeros, (features,))
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,))
        ra_var = self.variable("batch_stats", "var", jnp.ones, (features,))
        if not train:
            mean, var = ra_mean.value, ra_var.value
            y = (x - mean) * jnp.reciprocal(jnp.sqrt(var + self.epsilon))
            return y * scale + bias
        batch = x.shape[0]
        group = self.ghost_batch_size or batch
        if batch % group:
            raise ValueError(f"ghost batch size {group} does not divide the batch of {batch}")
        xg = x.reshape((batch // group, group) + x.shape[1:])
        reduce_axes = tuple(range(1, xg.ndim - 1))  # all but group index and features
        mean = jnp.mean(xg, axis=reduce_axes, keepdims=True)
        var = jnp.mean(jnp.square(xg - mean), axis=reduce_axes, keepdims=True)
        y = ((xg - mean) * jnp.reciprocal(jnp.sqrt(var + self.epsilon))).reshape(x.shape)
        if not self.is_initializing():
            m = self.momentum
            ra_mean.value = m * ra_mean.value + (1 - m) * jnp.mean(mean.reshape(-1, features), axis=0)
            ra_var.value = m * ra_var.value + (1 - m) * jnp.mean(var.reshape(-1, features), axis=0)
        return y * scale + bias
