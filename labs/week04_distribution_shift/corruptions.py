"""Week 4: common corruptions (ImageNet-C style) and the corruption error.

Conventions for every corruption here:

- The signature is ``corruption(x, severity, generator)``. ``x`` is a float
  tensor of images in [0, 1], shape ``(N, C, H, W)``, on any device.
  ``severity`` is an int from 1 (mild) to 5 (severe); anything else raises
  ``ValueError``. Each severity selects one parameter from the corruption's
  row of :data:`SEVERITIES`: ``SEVERITIES[name][severity - 1]``.
- Randomness comes only from ``generator``, a ``torch.Generator`` on ``x``'s
  device (make one with ``torch.Generator(device).manual_seed(seed)``). The
  same seeded generator gives the same result, and torch's global generator
  is never used. Deterministic corruptions accept ``generator`` and ignore it,
  so every corruption can be called the same way.
- The result is a new tensor with the shape, dtype and device of ``x``,
  clipped to [0, 1]. ``x`` itself is never modified.
- Every image is corrupted on its own: corrupting a batch gives the same
  result as corrupting each image alone (statistics such as means are per
  image and per channel, never over the batch). Random corruptions draw
  independent noise for every pixel, channel and image.

The severity tables follow ImageNet-C (Hendrycks & Dietterich, 2019), whose
images are 224 pixels wide; the blur widths and pixel blocks are chosen for
images of 28 to 32 pixels.
"""

# The imports below are for the functions you will write.
# ruff: noqa: F401

from __future__ import annotations

import torch
import torch.nn.functional as F

# One row per corruption: the parameter at severities 1, 2, 3, 4, 5. Larger
# severities distort more.
SEVERITIES = {
    # standard deviation of the added Gaussian noise
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    # photons at full intensity: x -> Poisson(c * x) / c (fewer photons, more noise)
    "shot_noise": (60.0, 25.0, 12.0, 5.0, 3.0),
    # fraction of values replaced by 0 or 1 (salt and pepper, half each)
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
    # standard deviation of the Gaussian blur kernel, in pixels
    "gaussian_blur": (0.5, 0.75, 1.0, 1.25, 1.5),
    # factor that shrinks every value's distance to its image-and-channel mean
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    # amount added to every value
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    # side of the square blocks, in pixels, that are replaced by their mean
    "pixelate": (2, 3, 5, 6, 8),
}


def gaussian_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Add independent Gaussian noise to every value, then clip to [0, 1].

    ``clip(x + c * z, 0, 1)`` with ``z`` standard normal (one draw per pixel,
    channel and image, from ``generator``) and ``c`` the noise's standard
    deviation: ``SEVERITIES["gaussian_noise"] = (0.08, 0.12, 0.18, 0.26, 0.38)``.

    Args:
        x: images ``(N, C, H, W)``, float, in [0, 1].
        severity: 1 to 5.
        generator: ``torch.Generator`` on ``x``'s device, the only source of randomness.

    Returns:
        A new tensor like ``x``, values in [0, 1].

    Raises:
        ValueError: ``severity`` is not an integer from 1 to 5.
    """
    raise NotImplementedError(
        "TODO: implement gaussian_noise as the docstring describes, then run `make test-week4`"
    )


def shot_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Photon (Poisson) noise: ``clip(Poisson(c * x) / c, 0, 1)``.

    A sensor that counts on average ``c`` photons for a value of 1 sees
    ``Poisson(c * x)`` of them, one independent draw per value (from
    ``generator``, e.g. ``torch.poisson(rates, generator=generator)``). Dividing
    by ``c`` brings the mean back to ``x``; the variance is ``x / c``, so the
    noise grows with the brightness and black pixels stay exactly black.
    ``SEVERITIES["shot_noise"] = (60, 25, 12, 5, 3)`` photons at full intensity.

    Args, Returns, Raises: as in :func:`gaussian_noise`.
    """
    raise NotImplementedError(
        "TODO: implement shot_noise as the docstring describes, then run `make test-week4`"
    )


def impulse_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Salt-and-pepper noise: replace a fraction ``a`` of the values by 0 or 1.

    Every value (each pixel of each channel of each image, independently) is
    replaced with probability ``a``: by 0 ("pepper") with probability ``a / 2``
    and by 1 ("salt") with probability ``a / 2``; otherwise it is kept. Draw one
    uniform number ``u`` per value from ``generator``: ``u < a / 2`` gives 0 and
    ``a / 2 <= u < a`` gives 1.
    ``SEVERITIES["impulse_noise"] = (0.03, 0.06, 0.09, 0.17, 0.27)``.

    Args, Returns, Raises: as in :func:`gaussian_noise`.
    """
    raise NotImplementedError(
        "TODO: implement impulse_noise as the docstring describes, then run `make test-week4`"
    )


def gaussian_blur(x: torch.Tensor, severity: int, generator=None) -> torch.Tensor:
    """Blur every channel of every image with a Gaussian kernel of width ``s``.

    The kernel is separable: the 1-D weights ``exp(-k**2 / (2 * s**2))`` for
    ``k = -r, ..., r`` with radius ``r = int(3 * s + 0.5)``, divided by their sum
    so they add up to 1, are applied along the rows and then along the columns.
    Beyond the border the image continues with its edge pixels (replicate
    padding), so a constant image stays constant. Channels are blurred
    separately and never mixed.
    ``SEVERITIES["gaussian_blur"] = (0.5, 0.75, 1.0, 1.25, 1.5)`` pixels.

    Args:
        x: images ``(N, C, H, W)``, float, in [0, 1].
        severity: 1 to 5.
        generator: ignored (the blur is deterministic).

    Returns, Raises: as in :func:`gaussian_noise`.
    """
    raise NotImplementedError(
        "TODO: implement gaussian_blur as the docstring describes, then run `make test-week4`"
    )


def contrast(x: torch.Tensor, severity: int, generator=None) -> torch.Tensor:
    """Reduce the contrast: pull every value towards its image's mean.

    ``clip((x - m) * c + m, 0, 1)`` where ``m`` is the mean of each image's
    channel over its pixels (shape ``(N, C, 1, 1)``: one mean per image and per
    channel, never over the batch) and ``c`` the factor that shrinks the
    distances to it: ``SEVERITIES["contrast"] = (0.4, 0.3, 0.2, 0.1, 0.05)``.

    Args, Returns, Raises: as in :func:`gaussian_blur`.
    """
    raise NotImplementedError(
        "TODO: implement contrast as the docstring describes, then run `make test-week4`"
    )


def brightness(x: torch.Tensor, severity: int, generator=None) -> torch.Tensor:
    """Brighten: ``clip(x + c, 0, 1)`` with ``c`` added to every value.

    ``SEVERITIES["brightness"] = (0.1, 0.2, 0.3, 0.4, 0.5)``. (ImageNet-C adds
    ``c`` to the value channel in HSV space; for grey images this is the same.)

    Args, Returns, Raises: as in :func:`gaussian_blur`.
    """
    raise NotImplementedError(
        "TODO: implement brightness as the docstring describes, then run `make test-week4`"
    )


def pixelate(x: torch.Tensor, severity: int, generator=None) -> torch.Tensor:
    """Pixelate: replace every ``b`` by ``b`` block of pixels by its mean.

    The blocks tile each image from its top-left corner; when ``H`` or ``W`` is
    not a multiple of ``b``, the blocks along the bottom and right borders are
    smaller and are averaged over the pixels they contain. Every channel of
    every image is pixelated on its own. One way: ``F.avg_pool2d(x, b,
    ceil_mode=True)`` gives the block means; repeat each ``b`` times along
    both axes (``repeat_interleave``) and crop to ``(H, W)``.
    ``SEVERITIES["pixelate"] = (2, 3, 5, 6, 8)`` pixels. (ImageNet-C shrinks
    and re-enlarges the image with a box filter, which is the same idea
    without whole-pixel blocks.)

    Args, Returns, Raises: as in :func:`gaussian_blur`.
    """
    raise NotImplementedError(
        "TODO: implement pixelate as the docstring describes, then run `make test-week4`"
    )


# Name -> corruption, in the order of the tables above: the default set for
# corruption_error_table and the notebook.
CORRUPTIONS = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "gaussian_blur": gaussian_blur,
    "contrast": contrast,
    "brightness": brightness,
    "pixelate": pixelate,
}


def corruption_error_table(
    model, x: torch.Tensor, y: torch.Tensor, corruptions: dict, severities, generator
) -> dict[str, list[float]]:
    """The model's error under every corruption at every severity.

    For each ``name, corrupt`` in ``corruptions.items()`` (in that order) and,
    within it, each ``s`` in ``severities`` (in that order), corrupt the whole
    batch once with ``corrupt(x, s, generator)`` and measure the error: the
    fraction of images whose predicted class (argmax of the logits) is not
    ``y``. All randomness comes from ``generator``, so a freshly seeded
    generator gives every model the very same corrupted images.

    The model is evaluated in eval mode without building a graph
    (``torch.no_grad()``) and is left in the mode it was in; its weights and
    gradients are not touched. ``x`` and ``y`` are not modified.

    Args:
        model: classifier returning logits ``(N, K)``, on ``x``'s device.
        x: images ``(N, C, H, W)``, float, in [0, 1].
        y: labels ``(N,)``, int64.
        corruptions: mapping name -> ``corrupt(x, severity, generator)``, for
            example :data:`CORRUPTIONS` or a part of it.
        severities: the severities to measure, e.g. ``(1, 2, 3, 4, 5)``.
        generator: ``torch.Generator`` on ``x``'s device, passed to every corruption.

    Returns:
        A dict with one entry per corruption, in the order of ``corruptions``:
        ``name -> [error at severities[0], error at severities[1], ...]``, a
        list of Python floats in [0, 1] as long as ``severities``.
    """
    raise NotImplementedError(
        "TODO: implement corruption_error_table as the docstring describes, then run `make test-week4`"
    )


def mce(errors: dict, baseline_errors: dict) -> float:
    """Mean corruption error (mCE) of a model, relative to a baseline model.

    For every corruption ``c`` of ``errors``, its corruption error is the
    model's errors summed over the severities, divided by the baseline's errors
    summed over the same severities::

        CE_c = sum_s E[c][s] / sum_s B[c][s]

    The mCE is the plain mean of ``CE_c`` over the corruptions. Normalise each
    corruption by the baseline *before* averaging: a corruption the baseline
    finds easy then counts as much as one it finds hard. The baseline scores
    exactly 1.0 against itself; lower is better. The result is a fraction (the
    papers print ``100 * mce`` as a percentage).

    Args:
        errors: ``name -> list of errors`` per severity, e.g. from
            :func:`corruption_error_table`.
        baseline_errors: the baseline's table, with at least the corruptions of
            ``errors``, measured at the same severities.

    Returns:
        A Python float ``>= 0``.

    Raises:
        ValueError: a corruption of ``errors`` is missing from
            ``baseline_errors``, or ``errors`` is empty, or the baseline's summed
            error for a corruption is 0.
    """
    raise NotImplementedError(
        "TODO: implement mce as the docstring describes, then run `make test-week4`"
    )


def relative_mce(
    errors: dict, clean_error: float, baseline_errors: dict, baseline_clean_error: float
) -> float:
    """Relative mCE: how much *worse* the model gets under corruption, relative to the baseline.

    For every corruption ``c`` of ``errors``, the model's degradation (its
    errors minus its own clean error, summed over the severities) is divided
    by the baseline's degradation (the baseline's errors minus the baseline's
    clean error, summed over the same severities)::

        relative CE_c = sum_s (E[c][s] - clean_error) / sum_s (B[c][s] - baseline_clean_error)

    and the relative mCE is the plain mean over the corruptions. A model that
    is more accurate on clean data but loses as much accuracy under
    corruption as the baseline scores about 1.0 (a low mCE alone does not
    show that). Individual severities may be below the clean error, so terms
    can be negative; only the sums matter.

    Args:
        errors, baseline_errors: as in :func:`mce`.
        clean_error: the model's error on the uncorrupted images, in [0, 1].
        baseline_clean_error: the baseline's error on the uncorrupted images.

    Returns:
        A Python float.

    Raises:
        ValueError: as in :func:`mce`, or the baseline's summed degradation for
            a corruption is not positive.
    """
    raise NotImplementedError(
        "TODO: implement relative_mce as the docstring describes, then run `make test-week4`"
    )
