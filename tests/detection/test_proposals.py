"""Two-stage object queries (detection/proposals.py) and the paper's double-cross block: shapes,
top-Q selection against brute force, gradient reach, image-independent content queries, what the
proposals read, learning (a tiny two-stage model overfits one episode)."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_convert

from indirect_attention.detection.decoder import DetrDecoder
from indirect_attention.detection.evaluate import evaluate
from indirect_attention.detection.losses import HungarianMatcher, SetCriterion
from indirect_attention.detection.model import IADETR, DetrModelConfig
from indirect_attention.detection.preprocess import InputSpec, resize
from indirect_attention.detection.proposals import ANCHOR_SIZE, TwoStageProposals
from indirect_attention.detection.sources import build_eval_set, eval_set_pairs
from indirect_attention.detection.train import detr_loss

TINY = dict(dim=32, num_heads=2, num_layers=2, ffn_dim=64, num_queries=5, bias_hidden=16)
TWO_STAGE = dict(TINY, object_queries="two-stage")


def _model(kind: str = "ia", **kwargs) -> IADETR:
    torch.manual_seed(0)
    return IADETR(DetrModelConfig(kind=kind, **{**TWO_STAGE, **kwargs}))


def _decoder_inputs(model: IADETR) -> list[dict]:
    """Record what the model hands its decoder: initial queries, reference boxes, query_pos."""
    calls: list[dict] = []

    def hook(_, args, kwargs):
        calls.append({"queries": args[0], "boxes": args[3], "query_pos": kwargs["query_pos"]})

    model.decoder.register_forward_pre_hook(hook, with_kwargs=True)
    return calls


@pytest.mark.parametrize("kind", ["ia", "misaligned", "double-cross"])
def test_two_stage_output_shapes(kind: str) -> None:
    model = _model(kind)
    out = model(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 24, 24))
    assert out.logits.shape == (2, 2, 5) and out.boxes.shape == (2, 2, 5, 4)
    assert out.proposal_logits.shape == (2, 64) and out.proposal_boxes.shape == (2, 64, 4)
    assert ((out.boxes > 0) & (out.boxes < 1)).all()
    assert not hasattr(model, "reference_logits")  # the boxes come from the proposals


def test_other_object_queries_have_no_proposals() -> None:
    torch.manual_seed(0)
    out = IADETR(DetrModelConfig(**TINY))(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 24, 24))
    assert out.proposal_logits is None and out.proposal_boxes is None


def test_proposals_start_at_their_cell_anchor() -> None:
    proposals = TwoStageProposals(16, 3)
    result = proposals(torch.randn(1, 6, 16), None, (2, 3))
    centres = [((c + 0.5) / 3, (r + 0.5) / 2) for r in range(2) for c in range(3)]
    expected = torch.tensor([[cx, cy, ANCHOR_SIZE, ANCHOR_SIZE] for cx, cy in centres])
    torch.testing.assert_close(result.proposal_boxes[0], expected)


def test_selected_proposals_are_the_top_q_by_score() -> None:
    model = _model("ia", num_queries=7)
    calls = _decoder_inputs(model)
    out = model(torch.rand(3, 3, 64, 64), torch.rand(3, 3, 24, 24))
    boxes = calls[0]["boxes"]
    for b in range(3):
        scores = out.proposal_logits[b].tolist()
        best = sorted(range(len(scores)), key=lambda i: -scores[i])[:7]  # brute force
        torch.testing.assert_close(boxes[b], out.proposal_boxes[b, best].detach())
    assert not boxes.requires_grad  # detached: the decoder's losses never reach the selection


def test_padded_cells_are_never_selected() -> None:
    torch.manual_seed(0)
    proposals = TwoStageProposals(16, 4)
    padding = torch.zeros(2, 12, dtype=torch.bool)
    padding[:, 4:] = True  # only 4 real cells: they must be the 4 selected
    result = proposals(torch.randn(2, 12, 16) * 10, padding, (3, 4))
    assert sorted(result.indices[0].tolist()) == [0, 1, 2, 3]
    assert sorted(result.indices[1].tolist()) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="select 4 of the 3 cells"):
        proposals(torch.randn(1, 3, 16), None, (1, 3))


def test_gradient_reaches_the_proposal_head_only_through_its_own_loss() -> None:
    model = _model("ia")
    criterion = SetCriterion(HungarianMatcher())
    targets, queries = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 24, 24)
    truth = [torch.tensor([[0.3, 0.4, 0.2, 0.2]]), torch.tensor([[0.6, 0.5, 0.3, 0.2]])]
    heads = model.proposals
    # the decoder's loss alone: selection and boxes are detached, the proposal head gets nothing
    output = model(targets, queries)
    criterion(output.logits, output.boxes, truth)["loss"].backward()
    assert heads.score_head.weight.grad is None and heads.memory_proj.weight.grad is None
    assert heads.content.weight.grad.abs().sum() > 0  # learned content queries are trained
    assert heads.position[0].weight.grad.abs().sum() > 0  # and the positional-query MLP
    model.zero_grad(set_to_none=True)
    losses = detr_loss(criterion, model(targets, queries), truth)
    assert "proposal_loss" in losses
    losses["loss"].backward()
    for parameter in (heads.score_head.weight, heads.box_head[-1].weight, heads.memory_proj.weight):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    assert heads.content.weight.grad.abs().sum() > 0
    backbone = next(model.backbone.parameters())
    assert backbone.grad is not None and backbone.grad.abs().sum() > 0


def test_content_queries_do_not_depend_on_the_image() -> None:
    """Mixed selection: a new target moves the reference boxes and positional queries, never the
    decoder's initial content queries."""
    model = _model("ia").eval()
    calls = _decoder_inputs(model)
    queries = torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        model(torch.rand(2, 3, 64, 64), queries)
        model(torch.rand(2, 3, 64, 64), queries)
    first, second = calls
    torch.testing.assert_close(first["queries"], second["queries"])
    torch.testing.assert_close(first["queries"][0], model.proposals.content.weight)
    assert not torch.allclose(first["boxes"], second["boxes"])
    assert not torch.allclose(first["query_pos"], second["query_pos"])


@pytest.mark.parametrize(("kind", "reads_query"), [("ia", False), ("double-cross", True)])
def test_proposals_read_the_target_or_the_fused_memory(kind: str, reads_query: bool) -> None:
    """IA: proposals from the target memory alone (the authors'); double-cross: from the memory
    after its fusion with the query image (the authors' too)."""
    model = _model(kind, fusion_layers=2).eval()
    target = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        first = model(target, torch.rand(1, 3, 24, 24)).proposal_logits
        second = model(target, torch.rand(1, 3, 24, 24)).proposal_logits
    assert torch.allclose(first, second) != reads_query


@pytest.mark.parametrize("fused_bias", [False, True])
def test_double_cross_fusion_layers_build_the_papers_block(fused_bias: bool) -> None:
    """fusion_layers=6: six target-to-query cross-attention + FFN layers, no self-attention,
    before the decoder, which reads the fused tokens (keys = values), with BoxRPB iff fused_bias."""
    torch.manual_seed(0)
    decoder = DetrDecoder(
        "double-cross",
        32,
        2,
        2,
        ffn_dim=64,
        bias_hidden=16,
        stride=8.0,
        fusion_layers=6,
        fused_bias=fused_bias,
    ).eval()
    assert len(decoder.fusion.layers) == 6
    assert all(layer.self_attn is None for layer in decoder.fusion.layers)
    assert (decoder.decoder.biases is not None) == fused_bias
    queries, boxes = torch.randn(1, 5, 32), torch.rand(1, 5, 4) * 0.5 + 0.25
    query_tokens, target_tokens = torch.randn(1, 16, 32), torch.randn(1, 16, 32)
    with torch.no_grad():
        out = decoder(queries, query_tokens, target_tokens, boxes, (4, 4))
        x = target_tokens  # the fusion block by hand, layer after layer
        for layer in decoder.fusion.layers:
            x = layer(x, query_tokens, query_tokens)
        memory = decoder.fusion.norm(x)
        expected = decoder.decoder(queries, memory, memory, references=boxes, positions=(4, 4))
    torch.testing.assert_close(out.outputs, expected.outputs)


def test_tiny_two_stage_model_overfits_one_episode() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    episode = build_eval_set("val", 1, draws=1)
    spec = InputSpec(target_size=64, query_size=24)  # the 256 px episode at a quarter
    targets = resize(episode.targets.float() / 255.0, (64, 64))
    queries = resize(episode.queries[0].float() / 255.0, (24, 24))
    truth = [box_convert(episode.boxes[0] / 256.0, "xyxy", "cxcywh")]
    model = IADETR(DetrModelConfig(**{**TWO_STAGE, "num_queries": 10}))
    criterion = SetCriterion(HungarianMatcher())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(150):
        loss = detr_loss(criterion, model(targets, queries), truth)["loss"]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # as training clips
        optimizer.step()
    result = evaluate(model, eval_set_pairs(episode), input_spec=spec)
    assert result["ap50"]["mean"] == pytest.approx(1.0)
