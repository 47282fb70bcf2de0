"""The named choices of w2s-lens, in one light module (the standard library only), so the
command line can build its help without loading torch.

Each kind is stated once, here: the kinds with behaviour are string enums whose members own it
(:class:`Method`, :class:`Readout`, :class:`Engine`, :class:`RouterKind`; a member *is* its
string, so run.json, results.json and the CLI options keep their values), and each tuple of
names (``METHODS``, ``READOUTS``, ``ROUTER_KINDS``, ...) is read off its enum or stated here.
Import them from here only.

Example:
    >>> "cloze" in READOUTS and "l2s" in METHODS
    True
    >>> Method("both").runs, Readout("letter").has_letter_orders, Engine("fast").captures
    (('caa', 'l2s'), True, True)
    >>> Readout.CLOZE == "cloze"
    True
"""

from enum import StrEnum

__all__ = ["DEFAULT_MODEL", "DEFAULT_MULTIPLIERS", "DEFAULT_SYSTEM_PROMPT", "DEVICES", "DTYPES",
           "EMBEDDINGS", "ENGINES", "EVAL_PARTS", "METHODS", "POSITIONS", "READOUTS",
           "ROUTER_INPUTS", "ROUTER_KINDS", "SCALES", "SCORINGS", "VARIANTS", "Engine", "Method",
           "Readout", "RouterKind"]


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
EMBEDDINGS = ("resid-last", "resid-mean", "minilm")
ENGINES = tuple(e.value for e in Engine)
#: Where the vector is added: from the last prompt token on (the default), at every token, or
#: on the prompt only (up to and including its last token; the scored continuation tokens are
#: then reached through attention only).
POSITIONS = ("from_last", "all", "prompt")
#: How the cloze readout scores an option: its summed log-probability, the mean per token, or
#: its first token only (the cloze analogue of a one-token readout).
SCORINGS = ("sum", "mean", "first")
#: What a router sees of an input: the unanswered prompt (``question``: the ``embedding``
#: setting), the options as continuations of the prompt (``options``: the model's residual
#: over each option's tokens, matching − non-matching and their mean, plus their token
#: counts), both concatenated, or a MiniLM embedding of the question with each option.
ROUTER_INPUTS = ("question", "options", "question+options", "minilm")
SCALES = ("raw", "relative")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
#: The parts an evaluation's settings are grouped in (``EvalConfig.data``, ``.sweep``, ...;
#: :mod:`w2s_lens.evaluation.config`), in order; the command line titles its option groups
#: with them.
EVAL_PARTS = ("data", "sweep", "routing", "statistics", "l2s", "compute")
