"""V-JEPA 2-AC predictor: the loader on the released layout, and parity with an independent reference of the
published math (written here from the facts in facebookresearch/vjepa2 `ac_predictor.py` and `modules.py`:
separate qkv for the action and state tokens, depth-only rotation for them, a loop-built block-causal mask,
explicit softmax attention), through PyTorch and through ONNX Runtime.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from vljepa_ros.export import cli as export_cli
from vljepa_ros.export.vjepa2_ac import export_vjepa2_ac
from vljepa_ros.torch_models.checkpoint import CheckpointError
from vljepa_ros.torch_models.vjepa2_ac_loading import load_vjepa2_ac
from vljepa_ros.torch_models.vjepa2_ac_predictor import ACPredictorConfig
from vljepa_ros.world_model.manifest import load_world_model_manifest

from support.vjepa2_ac_fixture import SMALL_PREDICTOR_HEADS, write_small_ac_checkpoint

PREFIX = "module.backbone."


# ------------------------------------------------------------------ the reference, straight from the facts
def ref_rotate(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of (B, h, N, d) by positions (N,), frequencies tiled as in the released 2.0 code."""
    d = x.shape[-1]
    omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float32) / (d / 2.0))
    freq = pos[:, None] * omega[None, :]
    sin, cos = torch.cat([freq.sin(), freq.sin()], -1), torch.cat([freq.cos(), freq.cos()], -1)
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated = torch.stack((-odd, even), dim=-1).flatten(-2)
    return x * cos + rotated * sin


def ref_mask(t: int, per_step: int) -> torch.Tensor:
    mask = torch.zeros(t * per_step, t * per_step, dtype=torch.bool)
    for t1 in range(t):
        for t2 in range(t1 + 1):
            mask[t1 * per_step : (t1 + 1) * per_step, t2 * per_step : (t2 + 1) * per_step] = True
    return mask


def ref_predictor(sd, heads, grid, tokens, actions, states):
    """The AC predictor over a raw state dict (keys without prefix)."""
    gh, gw = grid
    hw = gh * gw

    def lin(x, name):
        return F.linear(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"))

    def ln(x, name):
        return F.layer_norm(x, (x.shape[-1],), sd[f"{name}.weight"], sd[f"{name}.bias"], eps=1e-6)

    x = lin(tokens, "predictor_embed")
    b, n, dim = x.shape
    t = n // hw
    a = lin(actions, "action_encoder")[:, :, None]
    s = lin(states, "state_encoder")[:, :, None]
    x = torch.cat([a, s, x.view(b, t, hw, dim)], dim=2).flatten(1, 2)
    mask = ref_mask(t, 2 + hw)
    hd = dim // heads
    sub = 2 * ((hd // 3) // 2)
    ids = torch.arange(t * hw)
    d_pos = (ids // hw).float()
    h_pos = ((ids - hw * (ids // hw)) // gw).float() * (gh / gh)
    w_pos = (ids - hw * (ids // hw) - gw * ((ids - hw * (ids // hw)) // gw)).float() * (gw / gw)
    depth = len({k.split(".")[1] for k in sd if k.startswith("predictor_blocks.")})
    for i in range(depth):
        p = f"predictor_blocks.{i}."
        y = ln(x, p + "norm1").view(b, t, 2 + hw, dim)
        qs, ks, vs = [], [], []
        for c in range(2):
            q, k, v = lin(y[:, :, c], p + "attn.qkv").unflatten(-1, (3, heads, hd)).permute(2, 0, 3, 1, 4)
            steps = torch.arange(t, dtype=torch.float32)
            q = torch.cat([ref_rotate(q[..., :sub], steps), q[..., sub:]], -1)
            k = torch.cat([ref_rotate(k[..., :sub], steps), k[..., sub:]], -1)
            qs.append(q), ks.append(k), vs.append(v)
        q, k, v = lin(y[:, :, 2:].flatten(1, 2), p + "attn.qkv").unflatten(-1, (3, heads, hd)).permute(2, 0, 3, 1, 4)

        def rot3(z):
            parts = [
                ref_rotate(z[..., 0:sub], d_pos),
                ref_rotate(z[..., sub : 2 * sub], h_pos),
                ref_rotate(z[..., 2 * sub : 3 * sub], w_pos),
                z[..., 3 * sub :],
            ]
            return torch.cat(parts, -1)

        q, k = rot3(q), rot3(k)

        def merge(frames, conds):
            frames = frames.view(b, heads, t, hw, hd)
            conds = torch.stack(conds, dim=3)  # (b, heads, t, 2, hd)
            return torch.cat([conds, frames], dim=3).flatten(2, 3)

        q, k, v = merge(q, qs), merge(k, ks), merge(v, vs)
        scores = (q @ k.transpose(-2, -1)) * hd**-0.5
        scores = scores.masked_fill(~mask, float("-inf"))
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, -1, dim)
        x = x + lin(out, p + "attn.proj")
        z = ln(x, p + "norm2")
        x = x + lin(F.gelu(lin(z, p + "mlp.fc1")), p + "mlp.fc2")
    x = x.view(b, t, 2 + hw, dim)[:, :, 2:].flatten(1, 2)
    return lin(ln(x, "predictor_norm"), "predictor_proj")


# ------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_small_ac_checkpoint(tmp_path_factory.mktemp("ac") / "vjepa2-ac-small.pt")


@pytest.fixture(scope="module")
def raw_predictor_state(ckpt):
    data = torch.load(ckpt, weights_only=True)
    assert all(k.startswith(PREFIX) for part in data.values() for k in part)
    return {k.removeprefix(PREFIX): v for k, v in data["predictor"].items()}


def inputs(steps: int, batch: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, steps * 16, 96, generator=g),
        0.05 * torch.randn(batch, steps, 7, generator=g),
        torch.randn(batch, steps, 7, generator=g),
    )


def test_loads_released_layout_and_matches_reference(ckpt, raw_predictor_state):
    encoder, predictor, info = load_vjepa2_ac(ckpt, crop=32, num_heads=4, predictor_num_heads=SMALL_PREDICTOR_HEADS)
    assert info.ignored == ("encoder.pos_embed",)
    assert predictor.cfg.depth == 2 and predictor.cfg.encoder_dim == 96 and predictor.cfg.grid_height == 4
    for steps in (1, 3):
        x = inputs(steps)
        with torch.no_grad():
            got = predictor(*x)
            want = ref_predictor(raw_predictor_state, SMALL_PREDICTOR_HEADS, (4, 4), *x)
        assert got.shape == (2, steps * 16, 96)
        assert torch.max(torch.abs(got - want)) <= 1e-5


def test_reference_is_sensitive_to_actions_and_causal(raw_predictor_state):
    """The reference (and so the parity) would notice a wrong action path or a leaking mask."""
    tokens, actions, states = inputs(2)
    with torch.no_grad():
        base = ref_predictor(raw_predictor_state, 4, (4, 4), tokens, actions, states)
        moved = actions.clone()
        moved[:, 1] += 0.5
        later = ref_predictor(raw_predictor_state, 4, (4, 4), tokens, moved, states)
    assert torch.allclose(base[:, :16], later[:, :16], atol=1e-6)  # step 0 cannot see step 1's action
    assert torch.max(torch.abs(base[:, 16:] - later[:, 16:])) > 1e-3


def test_onnx_parity_with_reference_at_several_step_counts(ckpt, raw_predictor_state, tmp_path):
    encoder, predictor, _ = load_vjepa2_ac(ckpt, crop=32, num_heads=4, predictor_num_heads=SMALL_PREDICTOR_HEADS)
    manifest_path = export_vjepa2_ac(encoder, predictor, tmp_path / "wm", log=lambda _: None)
    manifest = load_world_model_manifest(manifest_path)
    assert (manifest.grid_height, manifest.embed_dim, manifest.crop_size) == (4, 96, 32)
    session = ort.InferenceSession(str(tmp_path / "wm" / manifest.predictor), providers=["CPUExecutionProvider"])
    for steps in (1, 2, 4):
        tokens, actions, states = inputs(steps, batch=3, seed=steps)
        got = session.run(None, {"tokens": tokens.numpy(), "actions": actions.numpy(), "states": states.numpy()})[0]
        with torch.no_grad():
            want = ref_predictor(raw_predictor_state, SMALL_PREDICTOR_HEADS, (4, 4), tokens, actions, states).numpy()
        assert np.max(np.abs(got - want)) <= 1e-4, steps


def test_wrong_predictor_heads_change_the_output(ckpt, raw_predictor_state):
    _, predictor, _ = load_vjepa2_ac(ckpt, crop=32, num_heads=4, predictor_num_heads=2)
    x = inputs(1)
    with torch.no_grad():
        assert torch.max(torch.abs(predictor(*x) - ref_predictor(raw_predictor_state, 4, (4, 4), *x))) > 1e-3


def edit_checkpoint(src, dst, edit):
    data = torch.load(src, weights_only=True)
    edit(data)
    torch.save(data, dst)
    return dst


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("predictor"), "no predictor entry; top-level keys: ['encoder']"),
        (lambda d: d["predictor"].pop(PREFIX + "predictor_norm.bias"), "1 missing key(s) ['predictor_norm.bias']"),
        (lambda d: d["predictor"].update({PREFIX + "extra.weight": torch.zeros(1)}), "unexpected ['extra.weight']"),
        (
            lambda d: d["predictor"].update({PREFIX + "state_encoder.bias": torch.zeros(3)}),
            "state_encoder.bias has shape (3,), the model expects (64,)",
        ),
        (
            lambda d: d["encoder"].update({PREFIX + "norms_block.0.weight": torch.zeros(96)}),
            "V-JEPA 2.1 keys found",
        ),
        (lambda d: d["predictor"].pop(PREFIX + "predictor_embed.weight"), "[predictor]: no predictor_embed.weight"),
    ],
)
def test_refuses_in_one_line_naming_what_it_found(ckpt, tmp_path, edit, message):
    bad = edit_checkpoint(ckpt, tmp_path / "bad.pt", edit)
    with pytest.raises(CheckpointError) as err:
        load_vjepa2_ac(bad, crop=32, num_heads=4, predictor_num_heads=4)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_vjepa2_ac(path)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_vjepa2_ac(tmp_path / "list.pt")


def test_released_sizes_are_the_defaults():
    """The published ViT-g AC predictor: 24 blocks, 1024 wide, 16 heads, 7-d actions, 1408 -> 1024 -> 1408."""
    released = ACPredictorConfig()
    assert (released.encoder_dim, released.embed_dim, released.depth, released.num_heads) == (1408, 1024, 24, 16)
    assert (released.mlp_dim, released.action_dim, released.grid_height) == (4096, 7, 16)


def test_export_model_cli_writes_a_world_model_folder(ckpt, tmp_path, capsys):
    out = tmp_path / "wm"
    args = ["--vjepa2-ac", str(ckpt), "--num-heads", "4", "--predictor-num-heads", "4", "--crop", "32"]
    assert export_cli.main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parity predictor (3 steps)" in printed and "one step through the runtime" in printed
    assert load_world_model_manifest(out).crop_size == 32
    assert export_cli.main(["--vjepa2-ac", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x")]) == 1
    assert capsys.readouterr().err.strip().endswith("missing.pt: no such file")
