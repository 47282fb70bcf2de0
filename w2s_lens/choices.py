"""The named choices of w2s-lens, in one light module (no imports), so the command line can
build its help without loading torch.

Each tuple is owned and imported from here only (one import home; the modules that implement
a choice import it from here).

Example:
    >>> "cloze" in READOUTS and "l2s" in METHODS
    True
"""

__all__ = ["DEFAULT_MODEL", "DEFAULT_MULTIPLIERS", "DEFAULT_SYSTEM_PROMPT", "DEVICES", "DTYPES",
           "EMBEDDINGS", "ENGINES", "METHODS", "POSITIONS", "READOUTS", "ROUTER_INPUTS",
           "ROUTER_KINDS", "SCALES", "SCORINGS", "VARIANTS"]

#: The default model: the embedded Qwen2.5-Coder-0.5B-Instruct.
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"
#: The steering multipliers λ of the steerability slope (Tan et al. 2024).
DEFAULT_MULTIPLIERS: tuple[float, ...] = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
DEFAULT_SYSTEM_PROMPT = "You are a helpful, honest and concise assistant."
#: Prompt variants: in-distribution, then system-prompt and user-prompt OOD shifts.
VARIANTS = ("base", "sys-pos", "sys-neg", "user-pos", "user-neg")
READOUTS = ("letter", "cloze")
METHODS = ("caa", "l2s", "both")
ROUTER_KINDS = ("logreg", "mlp", "curve", "knn")
EMBEDDINGS = ("resid-last", "resid-mean", "minilm")
ENGINES = ("fast", "naive")
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
