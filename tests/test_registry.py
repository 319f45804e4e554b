"""The method registry: a new method is one module, and reaches everything from the registry.

The toy method below is declared here, in this test module only, the way a method module
declares itself. Registered in a temporary registry it reaches the network list,
training, evaluation (through its own similarity) and the tables, without a change to any
other module; outside the ``with`` block it is gone.
"""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import no_weights_or_identity
from crossmod.evaluation.scoring import evaluate
from crossmod.methods import linear
from crossmod.methods.ours import parts_for
from crossmod.methods.registry import Method, NetworkSpec, registry, temporary_registry
from crossmod.reporting.collect import network_rows
from crossmod.reporting.tables import build_tables
from crossmod.training.loop import TrainSettings, train_network
from test_devices import toy_split


def toy_loss(model, spec, embeddings, keys, settings):
    """In-batch softmax over cosine similarities of the two modalities (an InfoNCE)."""
    import torch
    import torch.nn.functional as F

    x, y = (embeddings[m] for m in spec.retrieval_modalities)
    logits = x @ y.T / 0.1
    target = torch.arange(len(x))
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)


def toy_similarity(model, spec, query, answer, queries, candidates):
    """Cosine similarity (the embeddings are L2-normalised)."""
    return (candidates * queries[:, None, :]).sum(axis=-1)


TOY = Method(
    name="toy",
    label="TOY",
    order=9,
    colour="#17becf",
    networks=(NetworkSpec("toy_tg", "toy", "per-task", ("text", "gaze"), "tg"),),
    build=linear.build,
    loss=toy_loss,
    similarity=toy_similarity,
    in_paper_summary=False,
)


def test_registered_methods_and_their_networks():
    methods = registry()
    names = ["veit", "base", "content", "style", "ours", "pvse"]
    assert [m.name for m in methods.ordered()] == names
    assert len(methods.networks()) == 17 + 4  # the paper's, and PVSE's
    assert methods.columns("per-task") == tuple(names)
    assert methods.columns("joint") == ("veit", "base", "style", "ours", "pvse")
    paper = ("veit", "base", "content", "style", "ours")
    assert methods.columns("per-task", paper_summary=True) == paper
    assert len(set(methods.colours().values())) == len(names)
    with pytest.raises(KeyError, match="unknown network 'nope'"):
        methods.network("nope")


def test_registering_twice_or_without_functions_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        with temporary_registry(registry().method("base")):
            pass
    bare = Method(
        "bare",
        "BARE",
        9,
        "k",
        networks=(NetworkSpec("bare_tg", "bare", "per-task", ("text", "gaze"), "tg"),),
    )
    with pytest.raises(ValueError, match="give build, loss, similarity"):
        with temporary_registry(bare):
            pass


def test_a_toy_method_reaches_networks_training_evaluation_and_tables():
    data = toy_split()
    with temporary_registry(TOY) as methods:
        # The network list (what `training.networks: all` and the rules expand).
        assert "toy_tg" in methods.networks() and "toy_tg" in registry().networks()
        assert methods.columns("per-task")[-1] == "toy"
        assert "toy" not in methods.columns("per-task", paper_summary=True)
        # OURS's parts are unchanged by a method it does not combine.
        assert parts_for("per-task", "t2g") == {
            "base": "base_tg",
            "content": "content_tg",
            "style": "style_tg",
        }
        # Training: the shared loop builds the toy's model and uses its loss.
        spec = methods.network("toy_tg")
        settings = TrainSettings.from_config(steps=80, eval_every=20, patience=0, batch_size=64)
        result = train_network(spec, data, settings, split=0)
        assert [step for step, _ in result.loss_series["total"]] == [20, 40, 60, 80]
        assert result.loss_series["total"][-1][1] < result.loss_series["total"][0][1]
        # Evaluation: ranked on the saved pools through the toy's own similarity.
        test = evaluate(result.model, spec, data, "test")
        assert set(test) == {"t2g", "g2t"}
        for values in test.values():
            assert values["top3"] > 0.6, test  # chance 0.2: the planted link is found
        # A table: the tidy rows of its metrics give it a column of its own.
        report = {
            "dataset": "d",
            "split": 0,
            "method": "toy",
            "setup": "per-task",
            "network": "toy_tg",
            "test": test,
        }
        metrics = pd.DataFrame(network_rows(report))
        empty, identity = no_weights_or_identity()
        tables = {t.name: t for t in build_tables(metrics, empty, identity, "d")}
        top3 = tables["table3_top3"]
        assert "TOY" in top3.values.columns
        assert top3.values.loc["t2g", "TOY"] == pytest.approx(test["t2g"]["top3"])
        assert "TOY" not in tables["table1_summary"].values.columns  # paper's ranks unchanged
    assert "toy_tg" not in registry().networks()
