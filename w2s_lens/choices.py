"""The named choices of w2s-lens, in one light module (the standard library only), so the
command line can build its help without loading torch.

Each kind is stated once, here: the kinds with behaviour are string enums whose members own it
(:class:`Method`, :class:`Readout`, :class:`Engine`, :class:`RouterKind`, :class:`Embedding`,
:class:`RouterView`; a member *is* its string, so run.json, results.json and the CLI options
keep their values), and each tuple of names (``METHODS``, ``READOUTS``, ``ROUTER_KINDS``,
``EMBEDDINGS``, ``ROUTER_INPUTS``, ...) is read off its enum or stated here. Import them from
here only.

Example:
    >>> "cloze" in READOUTS and "l2s" in METHODS
    True
    >>> Method("both").runs, Readout("letter").has_letter_orders, Engine("fast").captures
    (('caa', 'l2s'), True, True)
    >>> Readout.CLOZE == "cloze"
    True
    >>> Embedding("resid-mean").name_at(12), RouterView("question+options").needs_options
    ('resid-mean@12', True)
"""

from enum import StrEnum
from typing import Literal, get_args

__all__ = ["DEFAULT_MODEL", "DEFAULT_MULTIPLIERS", "DEFAULT_SYSTEM_PROMPT", "DEVICES", "DTYPES",
           "EMBEDDINGS", "ENGINES", "EVAL_PARTS", "METHODS", "POSITIONS", "READOUTS",
           "ROUTER_INPUTS", "ROUTER_KINDS", "SCALES", "SCORINGS", "VARIANTS", "DTypeName",
           "Embedding", "EmbeddingName", "Engine", "EngineName", "Method", "MethodName",
           "PositionsName", "Readout", "ReadoutName", "RouterKind", "RouterKindName",
           "RouterView", "RouterViewName", "ScaleName", "ScoringName", "VariantName"]


class Method(StrEnum):
    """A steering method: CAA vectors, L2S's input-dependent vectors, or both side by side."""

    CAA = "caa"
    L2S = "l2s"
    BOTH = "both"

    @property
    def runs(self) -> tuple[str, ...]:
        """The base methods a run of this method evaluates, in order."""
        return (Method.CAA.value, Method.L2S.value) if self is Method.BOTH else (self.value,)


class Readout(StrEnum):
    """How steering is read: the A/B letter's log-odds, or the options' log-probabilities as
    continuations (cloze)."""

    LETTER = "letter"
    CLOZE = "cloze"

    @property
    def has_letter_orders(self) -> bool:
        """Whether an item comes in two letter orders (mirrored sweeps, the letter oracle)."""
        return self is Readout.LETTER

    @property
    def scores_options(self) -> bool:
        """Whether options are scored as continuations (the scoring rule, listed options and
        the answer-form diagnostics apply)."""
        return self is Readout.CLOZE


class Engine(StrEnum):
    """How a sweep runs: the fast engine (one prefix pass per input, residuals captured on
    the way) or the naive one (a full forward pass per layer × multiplier)."""

    FAST = "fast"
    NAIVE = "naive"

    @property
    def captures(self) -> bool:
        """Whether the sweep's forward passes also capture the router's embedding layer."""
        return self is Engine.FAST


class RouterKind(StrEnum):
    """A router: a classifier of the best layer (logistic regression, a small MLP) or a
    predictor of the whole steerability curve ``[L]`` (ridge regression, k nearest neighbours)
    that steers at the curve's argmax. The estimators are built in
    :mod:`w2s_lens.routing.estimators` (one builder and one tuning grid per member)."""

    LOGREG = "logreg"
    MLP = "mlp"
    CURVE = "curve"
    KNN = "knn"

    @property
    def classifies(self) -> bool:
        """Whether it classifies the best layer (scored by class probabilities), rather than
        predicting the steerability curve."""
        return self in (RouterKind.LOGREG, RouterKind.MLP)


class Embedding(StrEnum):
    """How a router embeds the unanswered prompt (``EvalConfig.embedding``, the ``question``
    view): the model's own residual stream (``hook_resid_pre``) at a layer, at the last prompt
    token (``resid-last``) or averaged over all prompt tokens (``resid-mean``), or the
    all-MiniLM-L6-v2 sentence embedding of the prompt text (``minilm``, offline from a wheel).
    The embedders are registered in :mod:`w2s_lens.routing.embeddings` (one per member)."""

    RESID_LAST = "resid-last"
    RESID_MEAN = "resid-mean"
    MINILM = "minilm"

    @property
    def reads_residual(self) -> bool:
        """Whether it reads the model's residual stream at a layer (it needs the model, and
        its name records the layer)."""
        return self is not Embedding.MINILM

    @property
    def needs_text_encoder(self) -> bool:
        """Whether it encodes the prompt's text with the MiniLM sentence encoder."""
        return self is Embedding.MINILM

    @property
    def captured_in_sweep(self) -> bool:
        """Whether a sweep whose engine captures (:attr:`Engine.captures`) computes it on the
        way: the residual at the last prompt token, which the prefix pass runs through."""
        return self is Embedding.RESID_LAST

    def name_at(self, layer: int | None) -> str:
        """Its stable name, recording the layer when it reads one: ``"resid-last@12"``,
        ``"minilm"`` (routers store it and refuse embeddings of another name on load)."""
        return f"{self.value}@{layer}" if self.reads_residual else self.value

    def width(self, d_model: int, d_text: int) -> int:
        """Its number of features: the model's width, or the text encoder's (``d_text``)."""
        return d_model if self.reads_residual else d_text


class RouterView(StrEnum):
    """What a router sees of an input (``EvalConfig.router_inputs``): the unanswered prompt,
    embedded as :class:`Embedding` says (``question``); the options as the model reads them,
    each continuing the prompt, its residual averaged over the option's tokens, as matching −
    non-matching and their mean, plus both options' log token counts (``options``); both
    concatenated (``question+options``); or the MiniLM embeddings of the prompt text followed
    by each option, as matching − non-matching and their mean (``minilm``). The features of
    each view are registered in :mod:`w2s_lens.routing.views` (one function per member)."""

    QUESTION = "question"
    OPTIONS = "options"
    QUESTION_OPTIONS = "question+options"
    MINILM = "minilm"

    @property
    def needs_question(self) -> bool:
        """Whether its features include the prompt's embedding (:class:`Embedding`)."""
        return self in (RouterView.QUESTION, RouterView.QUESTION_OPTIONS)

    @property
    def needs_option_residuals(self) -> bool:
        """Whether its features include the model's residuals over the options, each read
        as the continuation of the prompt (unsteered forward passes at the embedding layer)."""
        return self in (RouterView.OPTIONS, RouterView.QUESTION_OPTIONS)

    @property
    def needs_text_encoder(self) -> bool:
        """Whether its features are MiniLM sentence embeddings of the prompt with each option."""
        return self is RouterView.MINILM

    @property
    def needs_options(self) -> bool:
        """Whether it reads the input's option continuations: a new prompt, which comes
        without them, cannot be routed on it (no W2S bundle is saved for it)."""
        return self.needs_option_residuals or self.needs_text_encoder

    def width(self, d_model: int, d_question: int, d_text: int) -> int:
        """Its number of features: ``d_question`` (the prompt's embedding) if it reads the
        question, ``2 · d_model + 2`` if it reads the options' residuals, ``2 · d_text`` if it
        encodes the options' texts."""
        return ((d_question if self.needs_question else 0)
                + (2 * d_model + 2 if self.needs_option_residuals else 0)
                + (2 * d_text if self.needs_text_encoder else 0))

    def router_name(self, kind: str) -> str:
        """The name of a router of ``kind`` fitted on this view: the kind for ``question``,
        ``"<kind>@<view>"`` otherwise."""
        return kind if self is RouterView.QUESTION else f"{kind}@{self.value}"

    def embedding_name(self, question_embedding: str) -> str:
        """The embedding name a router of this view records (checked when it is loaded), from
        the name of the prompt's embedding (:meth:`Embedding.name_at`), whose layer the
        options' residuals share: ``"resid-last@12"``, ``"options@12"``,
        ``"resid-last@12+options@12"``, ``"minilm-options"``."""
        if self.needs_text_encoder:
            return "minilm-options"
        layer = question_embedding.rpartition("@")[2] if "@" in question_embedding else "?"
        parts = ([question_embedding] if self.needs_question else []) + (
            [f"options@{layer}"] if self.needs_option_residuals else [])
        return "+".join(parts)


#: The default model: the embedded Qwen2.5-Coder-0.5B-Instruct.
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"
#: The steering multipliers λ of the steerability slope (Tan et al. 2024).
DEFAULT_MULTIPLIERS: tuple[float, ...] = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
DEFAULT_SYSTEM_PROMPT = "You are a helpful, honest and concise assistant."
#: Prompt variants: in-distribution, then system-prompt and user-prompt OOD shifts.
VARIANTS = ("base", "sys-pos", "sys-neg", "user-pos", "user-neg")
READOUTS = tuple(r.value for r in Readout)
METHODS = tuple(m.value for m in Method)
ROUTER_KINDS = tuple(k.value for k in RouterKind)
EMBEDDINGS = tuple(e.value for e in Embedding)
ENGINES = tuple(e.value for e in Engine)
#: Where the vector is added: from the last prompt token on (the default), at every token, or
#: on the prompt only (up to and including its last token; the scored continuation tokens are
#: then reached through attention only).
POSITIONS = ("from_last", "all", "prompt")
#: How the cloze readout scores an option: its summed log-probability, the mean per token, or
#: one token only, the first at which the two options differ (the cloze analogue of a one-token
#: readout; :mod:`w2s_lens.sweep.readouts`).
SCORINGS = ("sum", "mean", "first")
#: What a router sees of an input (:class:`RouterView`).
ROUTER_INPUTS = tuple(v.value for v in RouterView)
SCALES = ("raw", "relative")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
#: The parts an evaluation's settings are grouped in (``EvalConfig.data``, ``.sweep``, ...;
#: :mod:`w2s_lens.evaluation.config`), in order; the command line titles its option groups
#: with them.
EVAL_PARTS = ("data", "sweep", "routing", "statistics", "l2s", "compute")

# The same names as ``Literal`` types, for annotations a type checker reads (it cannot read a
# tuple); each is checked against its tuple here, so the two cannot drift apart.
ReadoutName = Literal["letter", "cloze"]
MethodName = Literal["caa", "l2s", "both"]
EngineName = Literal["fast", "naive"]
RouterKindName = Literal["logreg", "mlp", "curve", "knn"]
EmbeddingName = Literal["resid-last", "resid-mean", "minilm"]
RouterViewName = Literal["question", "options", "question+options", "minilm"]
VariantName = Literal["base", "sys-pos", "sys-neg", "user-pos", "user-neg"]
PositionsName = Literal["from_last", "all", "prompt"]
ScoringName = Literal["sum", "mean", "first"]
ScaleName = Literal["raw", "relative"]
DTypeName = Literal["auto", "float32", "bfloat16", "float16"]
for _lit, _names in ((ReadoutName, READOUTS), (MethodName, METHODS), (EngineName, ENGINES),
                     (RouterKindName, ROUTER_KINDS), (EmbeddingName, EMBEDDINGS),
                     (RouterViewName, ROUTER_INPUTS), (VariantName, VARIANTS),
                     (PositionsName, POSITIONS), (ScoringName, SCORINGS), (ScaleName, SCALES),
                     (DTypeName, DTYPES)):
    if get_args(_lit) != _names:
        raise AssertionError(f"w2s_lens.choices: {_lit} does not spell out {_names}")
