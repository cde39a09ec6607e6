"""The memory benchmark's accounting (meta device, no arithmetic): each lever lowers the peak by the bytes
it is meant to remove, and weights are not counted twice through the views linear layers save."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import memory  # noqa: E402

from ditkit.models import create_model  # noqa: E402


def test_memory_accounting_of_the_levers(capsys):
    result = memory.main(["--model", "DiT-S/2", "--image-size", "256", "--batch-size", "8", "--method", "account"])
    params = sum(p.numel() for p in create_model("DiT-S/2", input_size=32, in_channels=4, num_classes=1000).parameters())
    gib = 2**30
    plain, ckpt = result["without_checkpointing"], result["with_checkpointing"]
    in_bwd = result["with_checkpointing_and_optimizer_in_backward"]
    bf16 = result["with_checkpointing_optimizer_in_backward_and_bf16_moments"]
    assert plain["states_gib"] == pytest.approx(5 * 4 * params / gib, abs=1e-3)  # weights, grads, 2 moments, EMA
    assert ckpt["activations_gib"] < plain["activations_gib"] / 4
    assert plain["states_gib"] - in_bwd["states_gib"] == pytest.approx(4 * params / gib, rel=0.05)  # the grads
    assert in_bwd["states_gib"] - bf16["states_gib"] == pytest.approx(4 * params / gib, abs=1e-3)  # half the moments
    assert list(result["ratios"].values()) == sorted(result["ratios"].values(), reverse=True)
    # saved activations of one step of a DiT-S/2 batch 8: the weights (130 MiB) are not among them
    assert 0.5 < plain["activations_gib"] < 0.8
