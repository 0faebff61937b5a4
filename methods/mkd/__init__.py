"""MKD: Multiresolution Knowledge Distillation for anomaly detection (Salehi et al., CVPR 2021).

A compact cloner C learns to reproduce a frozen VGG-16 expert S at its critical layers (the
max-pools ``pool2..pool5``) on normal images; a test image scores by how far C is from S. This
package computes what the official code computes (docs/mkd.md lists every deliberate difference):

- **loss** (``MseDirectionLoss``): ``Σ_l mean_batch(1 − cos_l) + λ · Σ_l MSE_l`` over the trained
  layers, cos on the flattened C·H·W activations; Adam (lr 1e-3), batches of 64, shuffled, no
  schedule, cloner in train mode (BatchNorm!) while training and in eval mode when scoring;
- **score**: ``Σ_l [(1 − cos_l) + λ · mean_CHW(diff²)]`` over ``pool3..pool5`` (the official code
  leaves pool2 out of the score although it trains on it) — ``score_layers='trained'`` scores
  every trained layer instead;
- **epochs** is the number of passes actually run: the official loop runs ``num_epochs + 1``
  passes, so the presets hold 52 (MNIST), 202 (CIFAR-10), 602 (MVTec);
- **localization**: gradients of the per-image score w.r.t. the network input, through expert and
  cloner, ``|·|`` summed over channels; SmoothGrad; guided backprop on the cloner's ReLUs; then a
  Gaussian (σ = 4) and an opening with the 3×3 cross. ``Scores.maps`` holds these raw maps (for
  the standard pixel metrics); ``Scores.extra_maps['mkd_code']`` the official post-processing
  (per image ``(g − min)/(p99 − min)`` clipped to [0, 1], then the Gaussian; the metric opens).

Speed without changing the math: the frozen expert's activations of the training images are
computed once per job and reused every epoch (up to a memory budget; the rest are recomputed per
batch); evaluation during training reuses the expert's activations of the test images the same
way; localization is batched (one backward of the summed per-image scores gives every image's
gradient, since images are independent in eval mode). Optional (CPU and CUDA): bf16 autocast
(``amp``, which also halves the expert cache) and channels_last.

Checkpoint policy: the final epoch is the headline; with ``eval_every > 0`` the history gives
the mean ± std after convergence (the paper's protocol) and the optimistic best-on-test value.

Modules: :mod:`.config` (config and presets), :mod:`.nets` (cloner, loss, score), :mod:`.cache`
(expert cache and its budget), :mod:`.localize` (map post-processing), :mod:`.method` (the
detector).
"""

from __future__ import annotations

from bench.methods.mkd.cache import ExpertCache, default_budget_mb, tap_bytes
from bench.methods.mkd.config import PRESETS, MKDConfig
from bench.methods.mkd.localize import gaussian, grayscale_p99, minmax, opening
from bench.methods.mkd.method import MKD
from bench.methods.mkd.nets import CRITICAL_LAYERS, OFFICIAL_SCORE_LAYERS, Cloner

__all__ = ["CRITICAL_LAYERS", "MKD", "OFFICIAL_SCORE_LAYERS", "PRESETS", "Cloner", "ExpertCache",
           "MKDConfig", "default_budget_mb", "gaussian", "grayscale_p99", "minmax", "opening",
           "tap_bytes"]
