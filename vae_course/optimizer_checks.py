"""The checks an optimizer state passes before ``optimizer.load_state_dict`` sees it.

A wrong-shape Adam state makes the fused kernel write out of bounds; a finite but
absurd one (a weight decay of 1e30, a learning rate of 0 where the settings say
1e-3, moments for half of the parameters) trains nothing, or something else than
the run that saved it, without a word. So the state must fit the model, be
complete, and agree with the training settings saved beside it.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .bounds import shown
from .checkpoint_checks import fail, is_finite_number, is_int, is_number

# The most training images of a dataset (MNIST and Fashion-MNIST have 60,000): with the
# batch size and the epochs, a bound on how many steps a run can have taken.
MAX_TRAIN_IMAGES = 60_000
# Settings the trainer fixes for every run (Adam's defaults): a saved state must have them.
_FIXED_BY_THE_TRAINER = ("betas", "eps", "weight_decay")

_ADAM_STATE = {"step", "exp_avg", "exp_avg_sq"}
_NONNEGATIVE_STATE = {"exp_avg_sq", "max_exp_avg_sq"}  # sqrt is taken of these
_SAME_BEHAVIOUR = ("amsgrad", "maximize", "decoupled_weight_decay")  # must agree to continue the same run


def _same_numbers(a: Any, b: Any) -> bool:
    """Equal numbers, or equal sequences of numbers (``(0.9, 0.999)`` == ``[0.9, 0.999]``)."""
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same_numbers(x, y) for x, y in zip(a, b))
    return is_number(a) and is_number(b) and a == b


def _group_settings(saved: dict, current: dict, label: str) -> dict:
    """The current group's settings with the saved learning rate checked and taken over.

    Adam's ``betas``, ``eps`` and ``weight_decay`` are fixed by the trainer (no
    setting changes them), so the saved ones must equal this optimizer's;
    implementation switches (fused, foreach, capturable) stay as this optimizer
    was built for this device.
    """
    group = {k: v for k, v in current.items() if k != "params"}
    for key in _SAME_BEHAVIOUR:
        if key in saved and key in current and (not isinstance(saved[key], bool) or saved[key] != current[key]):
            raise fail(label, f": optimizer setting {key}={shown(saved[key]):.20} differs from this optimizer's "
                              f"{current[key]!r}; it cannot continue the same run")
    for key in _FIXED_BY_THE_TRAINER:
        if key in current and key in saved and not _same_numbers(saved[key], current[key]):
            raise fail(label, f": optimizer setting {key}={shown(saved[key])} differs from {current[key]!r}, the "
                              f"value vae_course always trains with; it is damaged or was edited")
    if "lr" in saved:
        if not (is_finite_number(saved["lr"]) and saved["lr"] >= 0):
            raise fail(label, f": optimizer setting lr has an impossible value {shown(saved['lr'])}")
        group["lr"] = saved["lr"]
    return group


def _step_of(value: Any, label: str) -> Tensor:
    """Adam's step count: a whole, finite, non-negative number, as a 0-dim float tensor."""
    if isinstance(value, Tensor):
        if value.dim() != 0 or value.dtype not in (torch.float32, torch.float64):
            raise fail(label, f": optimizer step should be a number, found a {value.dtype} tensor of shape "
                              f"{tuple(value.shape)}")
        number, dtype = value.item(), value.dtype
    elif is_number(value):  # at most 64 bits: float() cannot overflow
        number, dtype = float(value), torch.float32
    else:
        raise fail(label, f": optimizer step should be a number within 64 bits, found {shown(value)}")
    if not (math.isfinite(number) and number >= 0 and number == int(number)):
        raise fail(label, f": optimizer step should be a whole number >= 0, found {shown(number)}")
    return torch.tensor(number, dtype=dtype)


def _param_state(saved: Any, param: Tensor, expected_keys: set | None, label: str) -> dict:
    if not isinstance(saved, dict):
        raise fail(label, f": optimizer state should be a dict per parameter, found {type(saved).__name__}")
    if not saved:
        return {}
    if expected_keys is not None and set(saved) != expected_keys:
        raise fail(label, f": optimizer state has entries {sorted(map(str, saved))[:6]}, Adam keeps "
                          f"{sorted(expected_keys)}")
    out = {}
    for key, value in saved.items():
        if key == "step":
            out[key] = _step_of(value, label)
            continue
        if not isinstance(value, Tensor) or value.shape != param.shape or value.dtype != param.dtype:
            found = f"{tuple(value.shape)} {value.dtype}" if isinstance(value, Tensor) else type(value).__name__
            raise fail(label, f": optimizer state {shown(key)} is {found}, its parameter is "
                              f"{tuple(param.shape)} {param.dtype}; it does not belong to this model")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise fail(label, f": optimizer state {key!r} has NaN or infinite values; use an earlier checkpoint")
        if key in _NONNEGATIVE_STATE and bool((value < 0).any()):
            raise fail(label, f": optimizer state {key!r} has negative values (it is a mean of squares)")
        # A fresh tensor with the parameter's own layout and device: what the fused
        # kernels assume when they walk the parameter and its state side by side.
        out[key] = torch.empty_strided(param.shape, param.stride(), dtype=param.dtype,
                                       device=param.device).copy_(value)
    return out


def optimizer_state_for(optimizer: torch.optim.Optimizer, saved: Any, label: str) -> dict:
    """A checked copy of ``saved`` that ``optimizer.load_state_dict`` can take safely.

    Checks the parameter-group count and sizes, that every state entry belongs to
    a parameter and matches its shape and dtype (a wrong-shape state makes the
    fused Adam kernel write out of bounds), finite values, and ``step`` >= 0.
    """
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list) \
            or not isinstance(saved.get("state"), dict):
        raise fail(label, ": optimizer_state should be a dict with 'state' and 'param_groups'")
    groups, current = saved["param_groups"], optimizer.param_groups
    if len(groups) != len(current):
        raise fail(label, f": optimizer has {len(groups)} parameter groups, this one has {len(current)}")
    owners: dict[int, tuple[Tensor, dict]] = {}
    new_groups = []
    for i, (group, now) in enumerate(zip(groups, current)):
        ids = group.get("params") if isinstance(group, dict) else None
        if not isinstance(ids, list) or len(ids) != len(now["params"]) or not all(is_int(j) for j in ids):
            raise fail(label, f": optimizer group {i} should list {len(now['params'])} parameter numbers")
        for j, param in zip(ids, now["params"]):
            if j in owners:
                raise fail(label, f": optimizer lists parameter number {j} twice")
            owners[j] = (param, now)
        new_groups.append({**_group_settings(group, now, label), "params": list(ids)})
    adam = isinstance(optimizer, torch.optim.Adam)
    new_state = {}
    for j, entry in saved["state"].items():
        if j not in owners:
            raise fail(label, f": optimizer has state for parameter {shown(j)}, which no group lists")
        param, group = owners[j]
        expected = (_ADAM_STATE | ({"max_exp_avg_sq"} if group.get("amsgrad") else set())) if adam else None
        new_state[j] = _param_state(entry, param.detach(), expected, label)
    if adam:
        _check_complete(new_state, owners, label)
    return {"state": new_state, "param_groups": new_groups}


def _check_complete(state: dict, owners: dict, label: str) -> None:
    """Once Adam has stepped, every parameter has its moments, all at the same step
    (every parameter of the course's models gets a gradient at every step)."""
    stepped = {j: s for j, s in state.items() if s}
    if not stepped:
        return
    missing = [j for j in owners if j not in stepped]
    if missing:
        raise fail(label, f": optimizer state is missing for {len(missing)} of {len(owners)} parameters (Adam "
                          f"steps all of them together); it is damaged or was edited")
    steps = {float(s["step"]) for s in stepped.values()}
    if len(steps) > 1:
        raise fail(label, f": optimizer state has parameters at different steps ({min(steps):g} and "
                          f"{max(steps):g}), but Adam steps all of them together; it is damaged or was edited")


def check_optimizer_agrees(state: dict, optimizer_state: dict, label: str) -> None:
    """The (checked) optimizer state must agree with the training settings beside it.

    The learning rate of every group is what ``train_config`` and ``lr_schedule``
    say (the constant schedule: exactly ``lr``; the cosine one: between 0 and
    ``lr``), and Adam's step count is at most what ``epoch`` epochs of
    ``batch_size`` batches (and one interrupted epoch) can take.
    """
    config = state["train_config"]
    base, schedule = config["lr"], config.get("lr_schedule", "constant")
    rates = [g["lr"] for g in optimizer_state["param_groups"]]
    for rate in rates:
        ok = math.isclose(rate, base, rel_tol=1e-9) if schedule == "constant" else 0 <= rate <= base * (1 + 1e-9)
        if not ok:
            allowed = f"{base:g}" if schedule == "constant" else f"between 0 and {base:g}"
            raise fail(label, f": the optimizer's learning rate is {rate:g}, but train_config says lr={base:g} "
                              f"with the {schedule} schedule ({allowed}); it is damaged or was edited")
    saved = state.get("lr_schedule")
    if saved is not None:
        claims = {"name": schedule, "base_lr": base, "lr": rates[0] if rates else None}
        for key, want in claims.items():
            if key in saved and want is not None and saved[key] != want:
                raise fail(label, f": lr_schedule says {key}={shown(saved[key])}, but the training settings and "
                                  f"the optimizer say {want!r}; it is damaged or was edited")
    steps = [float(s["step"]) for s in optimizer_state["state"].values() if s]
    limit = (state["epoch"] + 1) * math.ceil(MAX_TRAIN_IMAGES / config["batch_size"])
    if steps and max(steps) > limit:
        raise fail(label, f": the optimizer has taken {max(steps):.0f} steps, more than {state['epoch']} epochs of "
                          f"batches of {config['batch_size']} can take; it is damaged or was edited")


