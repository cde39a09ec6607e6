"""Speed levers in the model must not change its results (fp32 exactly as before; bf16 within bf16 rounding)."""

import pytest
import torch
import torch.nn.functional as F

import ditkit.models.dit as dit
from ditkit.models import create_model

TINY = dict(input_size=8, patch_size=2, in_channels=4, hidden_size=64, depth=2, num_heads=2, num_classes=5)


def qkv(dtype, seed=0, shape=(2, 3, 16, 32)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g).to(dtype).requires_grad_() for _ in range(3)]


def test_fp32_attention_is_torchs_fused_kernel():
    q, k, v = qkv(torch.float32)
    assert torch.equal(dit.attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


def test_cpu_bf16_attention_matches_fp32_within_bf16_rounding():
    q, k, v = qkv(torch.bfloat16)
    out = dit.attention(q, k, v)
    assert out.dtype == torch.bfloat16
    ref_in = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref = F.scaled_dot_product_attention(*ref_in)
    scale = ref.abs().max()
    assert (out.double() - ref).abs().max() < 2e-2 * scale
    # and no worse than torch's own bf16 kernel, forward and backward
    fused = F.scaled_dot_product_attention(q, k, v)
    assert (out.double() - ref).abs().max() <= 2 * (fused.double() - ref).abs().max() + 1e-3 * scale
    grad = torch.randn_like(ref)
    ours = torch.autograd.grad(out, (q, k, v), grad.bfloat16())
    theirs = torch.autograd.grad(ref, ref_in, grad)
    for a, b in zip(ours, theirs):
        assert (a.double() - b).abs().max() < 3e-2 * b.abs().max()


@pytest.mark.parametrize("block", ["adaln-zero", "cross-attention"])
def test_bf16_autocast_model_follows_fp32(block):
    torch.manual_seed(0)
    model = create_model(TINY, block=block).eval()
    for p in model.parameters():  # leave the zero init: make every path carry signal
        torch.nn.init.normal_(p, std=0.05)
    g = torch.Generator().manual_seed(1)
    x, t, y = torch.randn(3, 4, 8, 8, generator=g), torch.tensor([1, 500, 999]), torch.tensor([0, 2, 5])
    with torch.no_grad():
        ref = model(x, t, y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x, t, y).float()
    assert (low - ref).abs().max() < 3e-2 * ref.abs().max()


def test_compiled_blocks_give_the_same_outputs_gradients_and_keys():
    torch.manual_seed(0)
    model = create_model(TINY, class_dropout_prob=0.0)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    g = torch.Generator().manual_seed(1)
    x, t, y = torch.randn(2, 4, 8, 8, generator=g), torch.tensor([3, 700]), torch.tensor([1, 4])
    ref = model(x, t, y)
    ref.pow(2).sum().backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    keys = list(model.state_dict())
    model.zero_grad()
    model.compile_blocks(backend="eager")  # the graph capture itself; inductor codegen is too slow for a test
    out = model(x, t, y)
    out.pow(2).sum().backward()
    assert torch.allclose(out, ref, atol=1e-6)
    for a, b in zip(ref_grads, (p.grad for p in model.parameters())):
        assert torch.allclose(a, b, atol=1e-6)
    assert list(model.state_dict()) == keys


def test_tanh_gelu_keeps_atens_kernel_in_fp32_and_eager():
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(0)) * 4
    assert torch.equal(dit.TanhGelu()(x), F.gelu(x, approximate="tanh"))
    assert torch.equal(dit.TanhGelu()(x.bfloat16()), F.gelu(x.bfloat16(), approximate="tanh"))


def test_compiled_cpu_bf16_tanh_gelu_is_the_same_function_forward_and_backward():
    # compiled bf16 code on the CPU takes the x·σ(2u) form (exp instead of tanh): the same values up to float rounding
    gelu = torch.compile(dit.TanhGelu(), backend="eager")  # traced by dynamo, so the compiled branch is taken
    x = (torch.randn(8, 512, generator=torch.Generator().manual_seed(0)) * 4).bfloat16().requires_grad_()
    out = gelu(x)
    ref_in = x.detach().double().requires_grad_()
    ref = F.gelu(ref_in, approximate="tanh")
    assert out.dtype == torch.bfloat16
    step = 2.0 ** -7  # one bf16 step, relative
    # within one bf16 step of the exact value (and, in the far negative tail where the value is ~0, within 1e-6:
    # ATen's own x·½(1 + tanh u) cancels to 0 there)
    assert ((out.double() - ref).abs() <= step * ref.abs() + 1e-6).all()
    aten = F.gelu(x.detach(), approximate="tanh").double()
    exact = ref.detach().bfloat16().double()  # the exact value rounded to bf16
    # correctly rounded at least as often as ATen's bf16 kernel (which flushes the far negative tail to 0)
    assert (out.double() == exact).float().mean() >= (aten == exact).float().mean()
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    (ours,) = torch.autograd.grad(out, x, grad.bfloat16())
    (theirs,) = torch.autograd.grad(ref, ref_in, grad.double())
    assert ((ours.double() - theirs).abs() <= 2 * step * theirs.abs() + 1e-3).all()
