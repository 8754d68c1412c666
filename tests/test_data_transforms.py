"""Joint image/label augmentations."""
from __future__ import annotations

import numpy as np
import pytest

from edgeseg.data.synthetic import generate
from edgeseg.data.transforms import (ColorJitter, Compose, RandomCrop, RandomHorizontalFlip,
                                     RandomScale)


@pytest.fixture()
def pair():
    s = generate(0, seed=0, size=(60, 80))
    return s.image, s.semantic


def test_random_scale_keeps_label_values_and_aspect(pair):
    img, lab = pair
    t = RandomScale(0.5, 2.0)
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(6):
        i2, l2 = t(img, lab, rng)
        assert i2.shape[:2] == l2.shape and i2.dtype == np.uint8 and l2.dtype == np.uint8
        assert set(np.unique(l2)) <= set(np.unique(lab))  # nearest: no new ids
        assert abs(l2.shape[1] / l2.shape[0] - 80 / 60) < 0.05
        assert 29 <= l2.shape[0] <= 121
        sizes.add(l2.shape)
    assert len(sizes) > 1


def test_random_scale_exact_factor_two_is_nearest(pair):
    img, lab = pair
    _, l2 = RandomScale(2.0, 2.0)(img, lab, np.random.default_rng(0))
    assert np.array_equal(l2[::2, ::2], lab)


def test_random_crop_pads_with_pad_value_and_ignore(pair):
    img, lab = pair
    i2, l2 = RandomCrop(100, pad_value=114, ignore=255)(img, lab, np.random.default_rng(0))
    assert i2.shape == (100, 100, 3) and l2.shape == (100, 100)
    assert np.array_equal(i2[:60, :80], img) and np.array_equal(l2[:60, :80], lab)
    assert (i2[60:] == 114).all() and (l2[60:] == 255).all() and (l2[:, 80:] == 255).all()


def test_random_crop_is_a_window_of_the_input(pair):
    img, lab = pair
    rng = np.random.default_rng(3)
    i2, l2 = RandomCrop((32, 48))(img, lab, rng)
    assert i2.shape == (32, 48, 3) and i2.flags.c_contiguous
    # find the window
    hits = [(y, x) for y in range(60 - 31) for x in range(80 - 47)
            if np.array_equal(img[y:y + 32, x:x + 48], i2)]
    assert hits and any(np.array_equal(lab[y:y + 32, x:x + 48], l2) for y, x in hits)


def test_flip(pair):
    img, lab = pair
    i2, l2 = RandomHorizontalFlip(1.0)(img, lab, np.random.default_rng(0))
    assert np.array_equal(i2, img[:, ::-1]) and np.array_equal(l2, lab[:, ::-1])
    i3, l3 = RandomHorizontalFlip(0.0)(img, lab, np.random.default_rng(0))
    assert i3 is img and l3 is lab


def test_color_jitter_changes_image_not_label(pair):
    img, lab = pair
    t = ColorJitter(0.4, 0.4, 0.4, 0.1)
    i2, l2 = t(img, lab, np.random.default_rng(1))
    assert l2 is lab and i2.shape == img.shape and i2.dtype == np.uint8
    assert not np.array_equal(i2, img)
    i0, _ = ColorJitter()(img, lab, np.random.default_rng(1))
    assert np.array_equal(i0, img)
    # brightness only: a pure scale of the pixel values
    i3, _ = ColorJitter(brightness=0.5)(img, lab, np.random.default_rng(2))
    f = np.random.default_rng(2).uniform(0.5, 1.5)
    assert np.abs(i3.astype(int) - np.clip(img * f + 0.5, 0, 255).astype(int)).max() <= 1
    with pytest.raises(ValueError):
        ColorJitter(hue=0.7)


def test_compose_is_deterministic_given_rng(pair):
    img, lab = pair
    t = Compose([RandomScale(0.75, 1.5), RandomCrop(64), RandomHorizontalFlip(),
                 ColorJitter(0.2, 0.2, 0.2, 0.05)])
    a = t(img, lab, np.random.default_rng(5))
    b = t(img, lab, np.random.default_rng(5))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0].shape == (64, 64, 3) and a[1].shape == (64, 64)
    assert t(img, lab)[0].shape == (64, 64, 3)  # rng=None works
