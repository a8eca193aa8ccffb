"""Feature extraction: how useful are a model's codes for a classifier with few labels?

An autoencoder is often used as a *feature extractor*: train it on unlabelled
images, then fit a small classifier on its codes with the few labels one has.
The standard measurement is a **linear probe** (a logistic regression on frozen
features), compared with the same classifier on raw pixels given the same
labels (Kingma, Rezende, Mohamed & Welling 2014, arXiv:1406.5298, model M1).

Labels are drawn **balanced**, ``n // 10`` per digit, as in that paper; each
seed draws a different labelled set. Accuracies are fractions in [0, 1].
"""
from __future__ import annotations

import torch
from torch import Tensor

from .latent_metrics import latent_codes

__all__ = ["balanced_subset", "linear_probe", "compare_features", "latent_codes"]


def balanced_subset(y: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
    """Indices of ``n`` labelled examples, ``n // k`` from each of the ``k`` classes in ``y``.

    Raises ``ValueError`` unless ``n`` is a positive multiple of ``k`` and every
    class has enough examples.
    """
    classes = sorted(set(y.tolist()))
    if n < len(classes) or n % len(classes):
        raise ValueError(f"n: need a positive multiple of the {len(classes)} classes, got {n}")
    per_class = n // len(classes)
    picks = []
    for c in classes:
        idx = (y == c).nonzero().flatten()
        if len(idx) < per_class:
            raise ValueError(f"n: class {c} has only {len(idx)} examples, {per_class} needed")
        picks.append(idx[torch.randperm(len(idx), generator=generator)[:per_class]])
    return torch.cat(picks)


def linear_probe(train_features: Tensor, train_y: Tensor, test_features: Tensor, test_y: Tensor,
                 n_labels: int, seeds: tuple[int, ...] = (0, 1, 2), C: float = 1.0) -> dict[str, object]:
    """Test accuracy of a logistic regression fit on ``n_labels`` labelled training examples.

    Features are standardized (zero mean, unit variance, fit on the labelled
    examples) and classified by scikit-learn's ``LogisticRegression`` (L2
    penalty of strength ``1 / C``), once per seed, each seed drawing its own
    balanced labelled set (:func:`balanced_subset`).

    Args:
        train_features: ``(N, f)``; train_y: ``(N,)``; test_features: ``(M, f)``; test_y: ``(M,)``.
    Returns:
        ``{"mean", "std", "accuracies"}``: mean and sample standard deviation over
        seeds (``std`` is NaN for one seed), and the list of per-seed accuracies.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(train_features) != len(train_y) or len(test_features) != len(test_y):
        raise ValueError("features and labels: expected one label per row in both splits")
    accuracies = []
    for seed in seeds:
        idx = balanced_subset(train_y, n_labels, torch.Generator().manual_seed(seed))
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
        clf.fit(train_features[idx].double().numpy(), train_y[idx].numpy())
        accuracies.append(float(clf.score(test_features.double().numpy(), test_y.numpy())))
    acc = torch.tensor(accuracies, dtype=torch.float64)
    std = acc.std().item() if len(acc) > 1 else float("nan")
    return {"mean": acc.mean().item(), "std": std, "accuracies": accuracies}


def compare_features(features: dict[str, tuple[Tensor, Tensor]], train_y: Tensor, test_y: Tensor,
                     n_labels: tuple[int, ...] = (100, 1000), seeds: tuple[int, ...] = (0, 1, 2),
                     C: float = 1.0) -> dict[str, dict[int, dict[str, object]]]:
    """:func:`linear_probe` for every feature set and every label budget.

    Args:
        features: ``{name: (train_features, test_features)}``, e.g.
            ``{"pixels": (train_x.flatten(1), test_x.flatten(1)),
            "VAE mu": (latent_codes(vae, train_x), latent_codes(vae, test_x))}``.
    Returns:
        ``{name: {n: probe result}}``. Every feature set sees the same labelled
        examples for a given ``(n, seed)``.
    """
    return {name: {n: linear_probe(tr, train_y, te, test_y, n, seeds, C) for n in n_labels}
            for name, (tr, te) in features.items()}
