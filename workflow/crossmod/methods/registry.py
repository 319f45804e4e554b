"""The one registry of methods: every network, table column and plot colour comes from here.

A method is one module in ``crossmod.methods`` that defines ``METHOD``, a
:class:`Method`: its name (the ``method`` column of metrics.csv), table label, order
and colour, the networks it trains (setup, modalities, loss terms), and three
functions that the shared training and evaluation call:

- ``build(spec, data, settings, method_settings)`` -> a ``torch.nn.Module`` with
  ``modalities``, ``embed(modality, x) -> (n, width)`` and ``forward(batch) -> outputs``,
  fitted to the split's training rows where it needs (``data.train_rows``); it may set
  ``grad_clip`` (a float) to have the loop clip the gradient norm;
- ``loss(model, spec, outputs, keys, settings)`` -> a scalar tensor for one batch, or a
  dict of named parts with ``"total"`` (each part becomes its own training curve);
- ``similarity(model, spec, query_modality, answer_modality, queries, candidates)`` ->
  an (n, pool) array, higher = closer, from (n, D) query and (n, pool, D) candidate
  embeddings (a method with several embeddings per sample or a bilinear score ranks
  correctly through this one function).

Optional: ``inputs(spec, data)`` -> the per-annotation arrays the model reads (default:
the feature table's vectors), ``optimizer(model, settings)`` (default: Adagrad),
``settings`` (a :class:`~crossmod.settings.Settings` class: the method's own config
section, handed to ``build``) and ``needs`` (feature caches beyond the feature table,
by name, e.g. ``locals``; the train rule adds them as inputs).

Registering it is one line: its module name in :data:`METHOD_MODULES`. The network
list, the train entry point, OURS's parts, the tables, the plots and the Snakemake
target lists all read :func:`registry`.

Snakemake imports this while parsing, so a method module must import no ML library at
its top: its functions import torch (and torch modules such as
``crossmod.methods.encoders`` or ``crossmod.methods.triplet``) when they run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import combinations

from crossmod.methods.terms import Term

PAIRS: dict[str, tuple[str, str]] = {
    "tg": ("text", "gaze"),
    "gp": ("gaze", "personality"),
    "tp": ("text", "personality"),
}
SHORT = {"gaze": "g", "text": "t", "personality": "p", "image": "v"}
RETRIEVAL_MODALITIES = ("gaze", "text", "personality")
SETUPS = ("per-task", "joint")

METHOD_MODULES: tuple[str, ...] = (
    "crossmod.methods.veit",
    "crossmod.methods.base",
    "crossmod.methods.content",
    "crossmod.methods.style",
    "crossmod.methods.ours",
    "crossmod.methods.pvse",
)
"""Every registered method, one module each (registering a method is adding it here)."""


@dataclass(frozen=True)
class NetworkSpec:
    """One network a method trains: its encoders, its loss terms and the tasks it answers."""

    name: str
    method: str
    setup: str  # per-task or joint
    modalities: tuple[str, ...]  # encoders (retrieval modalities first)
    pair: str  # tg, gp, tp, or "all"
    terms: tuple[Term, ...] = ()  # the triplet terms, for methods trained by the engine
    content_subset: bool = False  # BASE/STYLE + the content subset: OURS's personality parts

    @property
    def retrieval_modalities(self) -> tuple[str, ...]:
        return tuple(m for m in self.modalities if m in RETRIEVAL_MODALITIES)

    @property
    def tasks(self) -> tuple[str, ...]:
        """Tasks this network answers: both directions of each of its retrieval pairs."""
        out = []
        for x, y in combinations(self.retrieval_modalities, 2):
            out += [f"{SHORT[x]}2{SHORT[y]}", f"{SHORT[y]}2{SHORT[x]}"]
        return tuple(out)

    @property
    def keys(self) -> tuple[str, ...]:
        """Grouping keys the batch sampler must serve (user+image alone: random batches)."""
        return tuple(sorted({t.key for t in self.terms})) or ("user_image",)

    @property
    def column(self) -> str:
        """The ``method`` value of this network's rows in metrics.csv."""
        return self.method + ("_sub" if self.content_subset else "")


def pair_networks(
    method: str,
    terms: Callable[[str, str], list[Term]] | None = None,
    extra: tuple[NetworkSpec, ...] = (),
) -> tuple[NetworkSpec, ...]:
    """``{method}_{pair}`` per retrieval pair, then ``extra``, then ``joint_{method}``.

    The networks every retrieval method trains. ``terms`` gives a pair's triplet terms
    (methods trained by the triplet engine); the joint network's are the sum of every
    pair's, a term shared by two pairs (such as STYLE's gaze->gaze) counted once. A
    method with its own loss (VEIT, PVSE) passes no terms.
    """

    def pair_terms(x: str, y: str) -> tuple[Term, ...]:
        return tuple(terms(x, y)) if terms else ()

    per_task = [
        NetworkSpec(f"{method}_{pair}", method, "per-task", (x, y), pair, pair_terms(x, y))
        for pair, (x, y) in PAIRS.items()
    ]
    joint_terms = tuple(dict.fromkeys(t for x, y in PAIRS.values() for t in pair_terms(x, y)))
    joint = NetworkSpec(
        f"joint_{method}", method, "joint", RETRIEVAL_MODALITIES, "all", joint_terms
    )
    return (*per_task, *extra, joint)


@dataclass(frozen=True)
class Method:
    """What a method declares about itself (see the module docstring)."""

    name: str
    label: str
    order: int  # position among the columns of tables and the bars of plots
    colour: str  # one colour in every plot
    networks: tuple[NetworkSpec, ...] = ()
    build: Callable | None = None
    loss: Callable | None = None
    similarity: Callable | None = None
    # Methods trained with something other than Adagrad give a factory here:
    # optimizer(model, settings) -> torch.optim.Optimizer.
    optimizer: Callable | None = None
    # inputs(spec, data) -> {modality: (N, ...) array}; default: the feature vectors.
    inputs: Callable | None = None
    # The method's own config section (a crossmod.settings.Settings class), if any.
    settings: type | None = None
    # Feature caches beyond the feature table, by name (results/{dataset}/features/NAME.npz).
    needs: tuple[str, ...] = ()
    # A combination of other methods' embeddings (OURS) trains nothing itself.
    combines: tuple[str, ...] = ()
    combination_setups: tuple[str, ...] = ()
    # In the paper's summary-rank tables (1 and 5), whose ranks must stay comparable.
    in_paper_summary: bool = True
    # Its networks train every split at once (crossmod.training.stacked): ``build``
    # returns an Embedder and ``loss`` takes (S, B, D) embeddings and (S, B) keys and
    # returns the (S,) losses. One job per (dataset, network) then trains all splits.
    stackable: bool = False

    @property
    def setups(self) -> tuple[str, ...]:
        """Setups in which the method has a column."""
        own = {spec.setup for spec in self.networks} | set(self.combination_setups)
        return tuple(s for s in SETUPS if s in own)


@dataclass
class Registry:
    """Methods by name; networks by name across every method."""

    methods: dict[str, Method] = field(default_factory=dict)

    def register(self, method: Method) -> Method:
        if method.name in self.methods:
            raise ValueError(f"method {method.name!r} is registered twice")
        clash = set(self.networks()) & {spec.name for spec in method.networks}
        if clash:
            raise ValueError(f"method {method.name!r}: network name(s) {sorted(clash)} taken")
        if method.networks and not (method.build and method.loss and method.similarity):
            raise ValueError(
                f"method {method.name!r} trains networks: give build, loss, similarity"
            )
        self.methods[method.name] = method
        return method

    def ordered(self) -> list[Method]:
        return sorted(self.methods.values(), key=lambda m: (m.order, m.name))

    def method(self, name: str) -> Method:
        if name not in self.methods:
            raise KeyError(f"unknown method {name!r}; known: {', '.join(sorted(self.methods))}")
        return self.methods[name]

    def networks(self) -> dict[str, NetworkSpec]:
        return {spec.name: spec for m in self.ordered() for spec in m.networks}

    def network(self, name: str) -> NetworkSpec:
        networks = self.networks()
        if name not in networks:
            raise KeyError(f"unknown network {name!r}; known: {', '.join(sorted(networks))}")
        return networks[name]

    def columns(self, setup: str, paper_summary: bool = False) -> tuple[str, ...]:
        """Methods with a column in ``setup``'s tables, in order."""
        return tuple(
            m.name
            for m in self.ordered()
            if setup in m.setups and (m.in_paper_summary or not paper_summary)
        )

    def labels(self) -> dict[str, str]:
        return {m.name: m.label for m in self.ordered()}

    def colours(self) -> dict[str, str]:
        return {m.name: m.colour for m in self.ordered()}

    def find(
        self, method: str, setup: str, pair: str, content_subset: bool = False
    ) -> NetworkSpec | None:
        """The network of ``method`` for a setup and pair (joint networks answer every pair)."""
        for spec in self.method(method).networks if method in self.methods else ():
            if spec.setup != setup or spec.content_subset != content_subset:
                continue
            if spec.pair == pair or (setup == "joint" and spec.pair == "all"):
                return spec
        return None


def _load_default() -> Registry:
    registry = Registry()
    for module in METHOD_MODULES:
        registry.register(importlib.import_module(module).METHOD)
    return registry


_active: list[Registry] = []


def registry() -> Registry:
    """The registry in use: the registered methods, or a temporary one (see below)."""
    if not _active:
        _active.append(_load_default())
    return _active[-1]


@contextmanager
def temporary_registry(*extra: Method) -> Iterator[Registry]:
    """The registered methods plus ``extra``, in force inside the ``with`` block (tests)."""
    current = registry()
    trial = Registry(dict(current.methods))
    for method in extra:
        trial.register(method)
    _active.append(trial)
    try:
        yield trial
    finally:
        _active.remove(trial)
