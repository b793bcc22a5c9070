"""lbbench.curvature.density: SLQ density is normalised and sits on the exact spectrum."""

import jax
import numpy as np
from _curvature_toys import mlp  # noqa: F401 (fixture)

from lbbench.curvature.density import spectral_density


def test_spectral_density_is_normalised_and_inside_spectrum(mlp):
    _, params, _, _, loss_fn, _, eigs = mlp
    sigma = 0.01 * (eigs[-1] - eigs[0])
    grid, density = spectral_density(
        loss_fn, params, num_runs=2, num_iters=30, key=jax.random.PRNGKey(8), grid_size=4000, sigma=sigma
    )
    assert grid.shape == density.shape == (4000,) and np.all(density >= 0)
    np.testing.assert_allclose(np.trapezoid(density, grid), 1.0, atol=1e-3)
    inside = (grid >= eigs[0]) & (grid <= eigs[-1])
    near = (grid >= eigs[0] - 3 * sigma) & (grid <= eigs[-1] + 3 * sigma)
    assert np.trapezoid(density[inside], grid[inside]) >= 0.9
    assert np.trapezoid(density[near], grid[near]) >= 0.99
