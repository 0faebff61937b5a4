import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from bench.core import metrics as M


def test_image_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + y
    assert M.image_auroc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert M.image_ap(y, s) == pytest.approx(average_precision_score(y, s))


def test_one_class_only_gives_nan_and_nan_scores_raise():
    assert np.isnan(M.image_auroc(np.zeros(5), np.arange(5.0)))
    with pytest.raises(ValueError, match="NaN"):
        M.image_auroc(np.array([0, 1]), np.array([0.0, np.nan]))


def test_pixel_auroc_covers_all_pixels_and_binarizes_soft_masks():
    rng = np.random.default_rng(1)
    masks = (rng.uniform(size=(3, 8, 8)) > 0.8).astype(float) * 0.7  # soft, above 0.5
    maps = rng.normal(size=(3, 8, 8)) + masks
    assert M.pixel_auroc(masks, maps) == pytest.approx(
        roc_auc_score((masks >= 0.5).ravel(), maps.ravel()))


def test_aupro_hand_computed():
    # one image, one region of two pixels; descending scores: 0.8 (region), 0.4 (normal),
    # 0.35 (region), 0.1 (normal) -> curve (0,0) (0,.5) (.5,.5) (.5,1) (1,1)
    masks = np.array([[[0, 0, 1, 1]]])
    maps = np.array([[[0.1, 0.4, 0.35, 0.8]]])
    assert M.pixel_aupro(masks, maps, fpr_limit=0.3) == pytest.approx(0.5)
    assert M.pixel_aupro(masks, maps, fpr_limit=1.0) == pytest.approx(0.75)


def test_aupro_averages_regions_not_pixels():
    # a big region found perfectly and a small one missed entirely: PRO = 0.5 at low FPR
    masks = np.zeros((1, 10, 10))
    masks[0, :4, :4] = 1  # 16 pixels
    masks[0, 8, 8] = 1  # 1 pixel, separate region
    maps = np.zeros((1, 10, 10))
    maps[0, :4, :4] = 1.0
    maps[0, 8, 8] = -1.0
    assert M.pixel_aupro(masks, maps, fpr_limit=0.3) == pytest.approx(0.5)


def test_aupro_perfect_and_bounded():
    rng = np.random.default_rng(2)
    masks = np.zeros((4, 16, 16))
    masks[1, 3:7, 3:9] = 1
    masks[2, 10:14, 1:4] = 1
    assert M.pixel_aupro(masks, masks + 0.0) == pytest.approx(1.0)
    maps = rng.uniform(size=masks.shape)
    v = M.pixel_aupro(masks, maps)
    assert 0.0 <= v <= 1.0
    assert v == pytest.approx(0.15, abs=0.1)  # random maps: about FPR/2 averaged to 0.3


def test_aupro_matches_threshold_sweep_reference():
    """Against a direct (slow) computation: PRO at many thresholds, then integrate."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    masks = np.zeros((3, 20, 20))
    masks[0, 2:8, 2:6] = 1
    masks[0, 12:15, 12:19] = 1
    masks[2, 5:10, 5:10] = 1
    maps = rng.uniform(size=masks.shape) + 0.6 * masks
    ths = np.sort(np.unique(maps))[::-1]
    labels = [ndimage.label(m, structure=np.ones((3, 3)))[0] for m in masks]
    fprs, pros = [0.0], [0.0]
    for t in ths:
        pred = maps >= t
        fprs.append(pred[masks == 0].mean())
        overlaps = [pred[i][labels[i] == r].mean() for i in range(3)
                    for r in range(1, labels[i].max() + 1)]
        pros.append(np.mean(overlaps))
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs <= 0.3
    k = int(np.argmax(~keep))
    y_at = pros[k - 1] + (pros[k] - pros[k - 1]) * (0.3 - fprs[k - 1]) / (fprs[k] - fprs[k - 1])
    ref = np.trapezoid(np.append(pros[keep], y_at), np.append(fprs[keep], 0.3)) / 0.3
    assert M.pixel_aupro(masks, maps) == pytest.approx(ref, abs=1e-9)


def test_mkd_protocol_matches_direct_loop():
    """The fast grey-opening version equals the official per-threshold binary-opening loop."""
    from scipy import ndimage

    rng = np.random.default_rng(4)
    n, h = 3, 24
    gt = np.zeros((n, h, h))
    gt[0, 4:12, 4:10] = 1
    gt[1, 15:20, 2:22] = 1
    gt[2, 1:5, 18:23] = 1
    gt = ndimage.uniform_filter(gt, size=(1, 3, 3))  # soft edges like bilinear resizing
    maps = np.clip(rng.uniform(size=gt.shape) * 0.7 + 0.4 * gt, 0, 1)
    labels = np.ones(n, dtype=int)
    tprs, fprs = [], []
    for t in np.arange(1000) / 1000.0:
        # cv2.morphologyEx(MORPH_OPEN) borders: erosion ignores outside pixels, dilation too
        pred = np.stack([
            ndimage.binary_dilation(
                ndimage.binary_erosion(m >= t, structure=M.CROSS_3x3, border_value=1),
                structure=M.CROSS_3x3, border_value=0)
            for m in maps]).astype(float)
        tprs.append((pred * gt).sum() / gt.sum())
        fp = (pred * (1 - gt)).sum()
        tn = ((1 - pred) * (1 - gt)).sum()
        fprs.append(fp / (fp + tn))
    from sklearn.metrics import auc

    assert M.pixel_auroc_mkd(gt, maps, labels) == pytest.approx(auc(fprs, tprs), abs=1e-9)


def test_mkd_protocol_ignores_normal_images():
    gt = np.zeros((2, 12, 12))
    gt[0, 4:8, 4:8] = 1
    maps = np.zeros((2, 12, 12))
    maps[0, 3:9, 3:9] = 0.9  # one pixel wider than the defect: survives the opening
    lit = maps.copy()
    lit[1] = 1.0  # a normal image lit up everywhere
    labels = np.array([1, 0])
    assert M.pixel_auroc_mkd(gt, maps, labels) == M.pixel_auroc_mkd(gt, lit, labels)
    assert M.pixel_auroc_mkd(gt, maps, labels) > 0.9
    assert M.pixel_auroc(gt, lit) < M.pixel_auroc(gt, maps)


def test_evaluate_shapes_and_protocol():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.8, 0.9])
    m, p = M.evaluate(y, s)
    assert m == {"image_auroc": 1.0, "image_ap": 1.0, "image_f1_max": 1.0} and p is None
    masks = np.zeros((4, 8, 8))
    masks[2:, 2:4, 2:4] = 1
    m, p = M.evaluate(y, s, masks, masks * 2.0)
    assert m["pixel_auroc"] == 1.0 and m["pixel_aupro"] == pytest.approx(1.0)
    # no native masks given: the standard pixel metrics used the model-size masks, and say so
    assert p["resolution"] == "model" and p["model_resolution"] == 8
    _, p_native = M.evaluate(y, s, masks, masks * 2.0, native_masks=list(masks != 0))
    assert p_native is not None and p_native["resolution"] == "native"
    assert p["includes_normal_images"] is True and p["thresholds"] == "exact"
    assert m["pixel_auroc_model_res"] == 1.0 and m["pixel_f1_max"] == 1.0
    with pytest.raises(ValueError, match="do not match"):
        M.evaluate(y, s, masks, np.zeros((4, 4, 4)))


def test_own_map_metrics_take_the_method_maps_or_normalize_the_standard_ones():
    y = np.array([0, 0, 1, 1])
    masks = np.zeros((4, 8, 8))
    masks[2:, 2:4, 2:4] = 1
    maps = masks * 3.0 + 1.0
    m, p = M.evaluate(y, y.astype(float), masks, maps)
    assert m["pixel_auroc_mkd"] == M.pixel_auroc_mkd(masks, M.normalize_per_image(maps), y)
    assert p["mkd_protocol_maps"] == "per-image min-max" and not M.uses_method_maps(p)
    own = 1.0 - masks  # the method's maps for this protocol, not derived from ``maps``
    m, p = M.evaluate(y, y.astype(float), masks, maps, {"pixel_auroc_mkd": own})
    assert m["pixel_auroc_mkd"] == M.pixel_auroc_mkd(masks, own, y) < 0.5
    assert p["mkd_protocol_maps"] == "method" and M.uses_method_maps(p)
    assert not M.uses_method_maps(None)
    with pytest.raises(ValueError, match="no metric takes maps of its own as pixel_auroc"):
        M.evaluate(y, y.astype(float), masks, maps, {"pixel_auroc": own})


def _brute_f1_max(y, s):
    """F1 of ``s >= t`` at every distinct score t, from the confusion counts."""
    best = 0.0
    for t in np.unique(s):
        called = s >= t
        tp, fp = (called & (y == 1)).sum(), (called & (y == 0)).sum()
        fn = (~called & (y == 1)).sum()
        best = max(best, 2 * tp / (2 * tp + fp + fn))
    return best


@pytest.mark.parametrize("rounding", [None, 1])  # 1 decimal: many tied scores
def test_image_f1_max_matches_sklearn_pr_curve_and_brute_force(rounding):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = rng.normal(size=300) + 0.8 * y
    if rounding is not None:
        s = np.round(s, rounding)
    p, r, _ = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * p * r / (p + r))
    assert M.image_f1_max(y, s) == pytest.approx(f1.max())
    assert M.image_f1_max(y, s) == pytest.approx(_brute_f1_max(y, s))
    assert M.image_f1_max(y, s) > 2 * y.mean() / (1 + y.mean())  # beats calling all anomalous


def test_image_f1_max_ties_fall_on_one_side():
    # the anomaly ties with a normal image: calling it means calling both (F1 2/3), never
    # the anomaly alone (F1 1); the rest of the order cannot help
    y = np.array([0, 1, 0, 0])
    s = np.array([0.9, 0.9, 0.1, 0.2])
    assert M.image_f1_max(y, s) == pytest.approx(2 / 3)
    assert M.image_f1_max(y, np.array([0.9, 0.95, 0.1, 0.2])) == 1.0


def test_f1_metrics_are_nan_when_one_class_is_missing():
    s = np.arange(4.0)
    for y in (np.zeros(4), np.ones(4)):
        assert np.isnan(M.image_f1_max(y, s))
        assert np.isnan(M.image_f1_at(y, s, 1.5))
        assert np.isnan(M.train_quantile_f1(y, s, s)[0])
    with pytest.raises(ValueError, match="NaN"):
        M.image_f1_max(np.array([0, 1]), np.array([0.0, np.inf]))


def test_image_f1_at_threshold_counts():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.5, 0.7, 0.5, 0.8, 0.05])
    # at 0.5 (inclusive): called 0.5, 0.7, 0.5, 0.8 -> TP 2, FP 2, FN 1
    assert M.image_f1_at(y, s, 0.5) == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))
    assert M.image_f1_at(y, s, 0.9) == 0.0  # nothing called: F1 0, not NaN
    assert M.image_f1_at(y, s, -1.0) == pytest.approx(2 * 3 / (2 * 3 + 3))


def test_train_quantile_threshold_comes_from_training_scores_only():
    rng = np.random.default_rng(4)
    train = rng.normal(size=101)
    y = rng.integers(0, 2, 50)
    s = rng.normal(size=50) + 2 * y
    f1, proto = M.train_quantile_f1(y, s, train, 0.9)
    assert proto["value"] == pytest.approx(np.sort(train)[90])  # linear: index 0.9 * 100
    assert proto["quantile"] == 0.9 and proto["train_images"] == 101
    assert proto["method"] == "linear" and ">=" in proto["rule"]
    assert f1 == pytest.approx(M.image_f1_at(y, s, proto["value"]))
    # other test labels and scores: another F1, the same threshold
    f1b, proto_b = M.train_quantile_f1(1 - y, -s, train, 0.9)
    assert proto_b == proto and f1b != f1
    # the default quantile, and q = 1 is the largest training score
    assert M.train_quantile_f1(y, s, train)[1]["quantile"] == M.DEFAULT_THRESHOLD_QUANTILE
    assert M.train_quantile_f1(y, s, train, 1.0)[1]["value"] == train.max()


@pytest.mark.parametrize("q", [0.0, -0.5, 1.5, float("nan")])
def test_train_quantile_rejects_bad_quantiles(q):
    with pytest.raises(ValueError, match="quantile"):
        M.train_quantile_f1(np.array([0, 1]), np.array([0.0, 1.0]), np.arange(3.0), q)


def test_train_quantile_rejects_bad_training_scores():
    with pytest.raises(ValueError, match="training scores"):
        M.train_quantile_f1(np.array([0, 1]), np.array([0.0, 1.0]), np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="training scores"):
        M.train_quantile_f1(np.array([0, 1]), np.array([0.0, 1.0]), np.array([]))
