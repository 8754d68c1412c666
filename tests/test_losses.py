"""Losses: cross-entropy with ignore/weights, soft Jaccard, Lovasz-softmax, combined specs."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeseg.errors import EdgesegError  # noqa: E402
from edgeseg.train.losses import (  # noqa: E402
    build_loss,
    cross_entropy,
    lovasz_softmax,
    lovasz_softmax_flat,
    parse_loss_spec,
    soft_jaccard_loss,
)
from edgeseg.eval.confusion import ConfusionMatrix  # noqa: E402

C = 4


def _batch(seed=0, n=2, h=12, w=10, ignore_frac=0.2):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, C, h, w, generator=g)
    target = torch.randint(0, C, (n, h, w), generator=g)
    target[torch.rand(n, h, w, generator=g) < ignore_frac] = 255
    return logits, target


def _hard_logits(pred: torch.Tensor, scale: float = 60.0) -> torch.Tensor:
    """Logits whose softmax is one-hot (to float precision) at ``pred``."""
    return torch.nn.functional.one_hot(pred, C).permute(0, 3, 1, 2).float() * scale


def test_ce_matches_manual_formula_with_class_weights_and_ignore():
    logits, target = _batch()
    w = torch.tensor([0.5, 1.0, 2.0, 4.0])
    logp = logits.log_softmax(1)
    valid = target != 255
    t = target.clamp(max=C - 1)
    nll = -logp.gather(1, t.unsqueeze(1)).squeeze(1)
    manual = (w[t] * nll)[valid].sum() / w[t][valid].sum()
    got = cross_entropy(logits, target, weight=w)
    torch.testing.assert_close(got, manual)
    unweighted = cross_entropy(logits, target)
    torch.testing.assert_close(unweighted, nll[valid].mean())
    assert not torch.isclose(got, unweighted)


def test_ignored_pixels_do_not_contribute():
    logits, target = _batch()
    for fn in (cross_entropy, soft_jaccard_loss, lovasz_softmax, build_loss("ce+lovasz+jaccard")):
        a = fn(logits, target)
        scrambled = logits.clone()
        scrambled[(target == 255).unsqueeze(1).expand_as(logits)] = 1e3  # garbage where ignored
        torch.testing.assert_close(fn(scrambled, target), a)
        g_logits = logits.clone().requires_grad_(True)
        fn(g_logits, target).backward()
        assert torch.all(g_logits.grad.permute(0, 2, 3, 1)[target == 255] == 0)


def test_all_ignored_gives_zero_with_graph():
    logits = torch.randn(1, C, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), 255)
    for fn in (cross_entropy, soft_jaccard_loss, lovasz_softmax):
        v = fn(logits, target)
        assert v.item() == 0.0 and v.requires_grad
        v.backward()


def test_logits_are_upsampled_to_label_size():
    logits = torch.randn(2, C, 4, 5)
    target = torch.randint(0, C, (2, 32, 40))
    up = torch.nn.functional.interpolate(logits, size=(32, 40), mode="bilinear", align_corners=False)
    for fn in (cross_entropy, soft_jaccard_loss, lovasz_softmax):
        torch.testing.assert_close(fn(logits, target), fn(up, target))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jaccard_is_one_minus_miou_for_hard_predictions(seed):
    _, target = _batch(seed)
    pred = torch.randint(0, C, target.shape, generator=torch.Generator().manual_seed(seed + 10))
    cm = ConfusionMatrix(C).update(pred.numpy(), target.numpy().astype(np.uint8))
    loss = soft_jaccard_loss(_hard_logits(pred), target, smooth=0.0)
    assert float(loss) == pytest.approx(1 - cm.miou(), abs=1e-5)
    # a perfect prediction has zero loss
    assert float(soft_jaccard_loss(_hard_logits(target.clamp(max=C - 1)), target, smooth=0.0)) == pytest.approx(0, abs=1e-6)


def test_lovasz_equals_jaccard_loss_on_hard_predictions():
    _, target = _batch(3, ignore_frac=0.0)
    pred = torch.randint(0, C, target.shape, generator=torch.Generator().manual_seed(7))
    probs = torch.nn.functional.one_hot(pred, C).reshape(-1, C).float()
    labels = target.reshape(-1)
    got = lovasz_softmax_flat(probs, labels, classes="present")
    ious = []
    for c in range(C):
        fg, pc = labels == c, pred.reshape(-1) == c
        if fg.any():
            ious.append(float((fg & pc).sum()) / float((fg | pc).sum()))
    assert float(got) == pytest.approx(1 - np.mean(ious), abs=1e-6)


def test_lovasz_gradient_matches_finite_differences():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 3, (1, 3, 4))
    target[0, 0, 0] = 255

    def f(x):
        return lovasz_softmax(x, target)

    # piecewise smooth: fine for random inputs (no ties in the error ordering)
    assert torch.autograd.gradcheck(f, (logits,), eps=1e-6, atol=1e-5)


def test_lovasz_gradient_pushes_towards_the_target():
    logits, target = _batch(4, ignore_frac=0.0)
    logits.requires_grad_(True)
    loss = lovasz_softmax(logits, target)
    loss.backward()
    onehot = torch.nn.functional.one_hot(target, C).permute(0, 3, 1, 2).bool()
    # descending the gradient raises the true-class logit relative to the others
    g = logits.grad
    assert g[onehot].mean() < 0 < g[~onehot].mean()
    with torch.no_grad():
        assert lovasz_softmax(logits - 50 * g, target) < loss


def test_lovasz_per_image_differs_from_batch_and_averages_images():
    logits, target = _batch(5)
    per = lovasz_softmax(logits, target, per_image=True)
    manual = torch.stack([lovasz_softmax(logits[i:i + 1], target[i:i + 1]) for i in range(2)]).mean()
    torch.testing.assert_close(per, manual)


def test_training_on_losses_reduces_them():
    target = torch.randint(0, C, (1, 8, 8))
    for spec in ("ce", "jaccard", "lovasz", "ce+lovasz", "ce+0.5*jaccard"):
        logits = torch.zeros(1, C, 8, 8, requires_grad=True)
        loss_fn = build_loss(spec)
        opt = torch.optim.Adam([logits], lr=0.3)
        first = loss_fn(logits, target).item()
        for _ in range(30):
            opt.zero_grad()
            loss = loss_fn(logits, target)
            loss.backward()
            opt.step()
        assert loss_fn(logits, target).item() < 0.5 * first, spec


def test_combined_loss_is_weighted_sum():
    logits, target = _batch(6)
    w = [1.0, 2.0, 1.0, 0.5]
    got = build_loss("ce+0.5*lovasz+jaccard:2", class_weights=w)(logits, target)
    want = (cross_entropy(logits, target, torch.tensor(w)) + 0.5 * lovasz_softmax(logits, target)
            + 2 * soft_jaccard_loss(logits, target))
    torch.testing.assert_close(got, want)


def test_loss_spec_parsing_and_errors():
    assert parse_loss_spec("ce") == {"ce": 1.0}
    assert parse_loss_spec("CE + lovasz") == {"ce": 1.0, "lovasz": 1.0}
    assert parse_loss_spec("ce+0.25*jaccard") == {"ce": 1.0, "jaccard": 0.25}
    assert parse_loss_spec("lovasz*3") == {"lovasz": 3.0}
    assert parse_loss_spec({"ce": 2}) == {"ce": 2.0}
    for bad in ("focal", "ce+dice", "", "ce+x*lovasz"):
        with pytest.raises(EdgesegError):
            build_loss(bad)
    with pytest.raises(EdgesegError, match="one weight per class"):
        build_loss("ce", class_weights=[1.0, 2.0])(*_batch())
