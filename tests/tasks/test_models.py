"""The synthetic models: shapes, what each variant contains, gradient reach, overfitting."""

import pytest
import torch

from indirect_attention.tasks import KINDS, ModelConfig, experiment, retrieval, sorting
from indirect_attention.training import (
    build_adamw,
    classification_step,
    evaluate,
    isolated_rng,
    make_generator,
)
from indirect_attention.training.engine import EpochState, train_one_epoch
from indirect_attention.training.precision import grad_scaler

TINY = ModelConfig(dim=32, num_heads=2, num_layers=2, ffn_dim=64, dropout=0.0)


def _step(model, batch):
    return classification_step(model(batch["conditioning"], batch["content"]), batch["labels"])


@pytest.mark.parametrize("kind", KINDS)
def test_shapes(kind):
    sort_cfg, ret_cfg = sorting.SortingConfig(), retrieval.RetrievalConfig()
    train, _ = sorting.generate(sort_cfg, generator=make_generator(0))
    assert sorting.build_model(kind, sort_cfg, TINY)(
        train.conditioning[:3], train.content[:3]
    ).shape == (3, 10, 10)
    train, _ = retrieval.generate(ret_cfg, generator=make_generator(0))
    assert retrieval.build_model(kind, ret_cfg, TINY)(
        train.conditioning[:3], train.content[:3]
    ).shape == (3, 10)


def test_variants_differ_where_they_should():
    cfg = retrieval.RetrievalConfig()
    train, _ = retrieval.generate(cfg, generator=make_generator(0))
    maps = {}
    for kind in KINDS:
        with isolated_rng(0):
            model = retrieval.build_model(kind, cfg, TINY).eval()
        maps[kind] = model.decode(train.conditioning[:2], train.content[:2], return_maps=True)
    assert maps["naive"].bias is None and maps["cross"].bias is None
    assert maps["cross"].attn.shape[-2:] == (cfg.query_len, cfg.reference_len)
    assert maps["indirect"].bias.shape == (TINY.num_layers, 2, TINY.num_heads, 10, 10)
    fixed = maps["indirect-nobias-update"].references
    assert torch.equal(fixed[0], fixed[-1])


def test_reference_update_receives_gradient():
    cfg = retrieval.RetrievalConfig()
    train, _ = retrieval.generate(cfg, generator=make_generator(0))
    with isolated_rng(0):
        model = retrieval.build_model("indirect", cfg, TINY)
    loss, _, _ = _step(model, {k: v[:16] for k, v in train.as_dict().items()})
    loss.backward()
    # the update of layer 1 feeds layer 2's bias; its zero-initialised projection gets a gradient
    assert model.decoder.updates[0].proj.weight.grad.abs().sum() > 0


def test_noenrich_queries_ignore_content():
    cfg = sorting.SortingConfig()
    with isolated_rng(0):
        model = sorting.build_model("indirect-noenrich", cfg, TINY)
    content = torch.randint(10, (2, 10), generator=make_generator(1))
    _, values = model._embed(content, content)
    assert torch.equal(model.queries(values)[0], model.queries(values)[1])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("module", [sorting, retrieval])
def test_tiny_model_overfits_32_examples(kind, module):
    config = sorting.SortingConfig() if module is sorting else retrieval.RetrievalConfig()
    train, _ = module.generate(config, generator=make_generator(0))
    data = {name: tensor[:32] for name, tensor in train.as_dict().items()}
    with isolated_rng(0):
        model = module.build_model(kind, config, TINY)
    optimizer = build_adamw(model, lr=3e-3, weight_decay=0.0)
    state = EpochState(epoch=0, step=0)
    for _ in range(15):  # through the engine every task and the detector train with
        train_one_epoch(
            model,
            optimizer,
            grad_scaler("32", "cpu"),
            [data] * 10,
            state,
            forward=experiment._forward,
            loss=experiment._loss,
            clip=None,
            precision="32",
            device=torch.device("cpu"),
        )
        if evaluate(model, data, _step).accuracy == 1.0:
            break
    fitted = evaluate(model, data, _step)
    assert fitted.accuracy >= 0.95, f"{kind} reached only {fitted.accuracy:.2f} on 32 examples"


def _captured_sources(model, conditioning, content):
    """(key_source, value_source) that the decoder receives."""
    seen = {}
    forward = model.decoder.forward

    def spy(queries, key_source, value_source, **kwargs):
        seen["keys"], seen["values"] = key_source, value_source
        return forward(queries, key_source, value_source, **kwargs)

    model.decoder.forward = spy
    model.decode(conditioning, content)
    return seen["keys"], seen["values"]


@pytest.mark.parametrize("kind", ["indirect", "naive", "cross"])
@pytest.mark.parametrize("value_positions", [True, False])
def test_value_position_switch_touches_values_only(kind, value_positions):
    from dataclasses import replace

    from indirect_attention.tasks import lookup

    config = lookup.LookupConfig(num_train=20, num_test=10)
    train, _ = lookup.generate(config, generator=make_generator(0))
    with isolated_rng(0):
        model = lookup.build_model(
            kind, config, replace(TINY, value_positions=value_positions)
        ).eval()
    conditioning, content = train.conditioning[:3], train.content[:3]
    keys, values = _captured_sources(model, conditioning, content)
    positions = torch.arange(10)
    # cross (lookup default): queries = the marked sequence, keys = values = the payload
    key_ids, key_table, key_pos = (
        (content, model.content_embed, model.content_pos)
        if kind == "cross"
        else (conditioning, model.conditioning_embed, model.conditioning_pos)
    )
    assert torch.equal(keys, key_table(key_ids) + key_pos(positions))
    expected = model.content_embed(content)
    if value_positions:
        expected = expected + model.content_pos(positions)
    assert torch.equal(values, expected)


def test_reference_errors_match_a_brute_force_count():
    from indirect_attention.tasks import lookup

    config = lookup.LookupConfig(offset=3, num_train=40, num_test=30)
    _, test = lookup.generate(config, generator=make_generator(0))
    with isolated_rng(0):
        model = lookup.build_model("indirect-nobias-update", config, TINY)
    rows = lookup.reference_errors(model, test, config, batch_size=7)
    assert [row["layer"] for row in rows] == list(range(TINY.num_layers + 1))
    # fixed references: query i stays at position i, the read position is (m + 3) mod 10
    distances = []
    for marks in test.conditioning.tolist():
        read = (marks.index(config.vocab_size) + 3) % 10
        distances += [abs(i - read) for i in range(10)]
    for row in rows:
        assert row["mean_abs_error"] == pytest.approx(sum(distances) / len(distances), abs=1e-5)
        assert row["within_half"] == pytest.approx(distances.count(0) / len(distances))
    with pytest.raises(ValueError, match="keeps no references"):
        lookup.reference_errors(lookup.build_model("naive", config, TINY), test, config)


def test_pointer_kind_uses_the_pointer_update():
    from indirect_attention import PointerUpdate

    with isolated_rng(0):
        model = sorting.build_model("indirect-pointer", sorting.SortingConfig(), TINY)
    assert all(isinstance(update, PointerUpdate) for update in model.decoder.updates)
