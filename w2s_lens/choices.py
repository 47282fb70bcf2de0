"""The named choices of w2s-lens, in one light module (no imports), so the command line can
build its help without loading torch.

Each tuple is owned here and re-exported by the module that implements it (e.g.
``w2s_lens.data.prompts.VARIANTS``).

Example:
    >>> "cloze" in READOUTS and "l2s" in METHODS
    True
"""

__all__ = ["DEFAULT_MODEL", "DEFAULT_MULTIPLIERS", "DEFAULT_SYSTEM_PROMPT", "DEVICES", "DTYPES",
           "EMBEDDINGS", "ENGINES", "METHODS", "POSITIONS", "READOUTS", "ROUTER_KINDS", "SCALES",
           "VARIANTS"]

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
POSITIONS = ("from_last", "all")
SCALES = ("raw", "relative")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
