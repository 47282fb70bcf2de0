"""``w2s-lens demo``: the story of the toolkit in one run, in a few minutes on a CPU.

1. **The positive control** (seconds; :mod:`~w2s_lens.demo.control`): a hand-built model whose
   input families can each be steered only at their own layer. The unchanged pipeline
   (:func:`~w2s_lens.demo.control.run_control`: cross-fitted training sweep, router, test
   sweep) must find those layers, and W2S must beat the best fixed layer beyond the noise.
2. **A real model on a dataset where it steers** (:mod:`~w2s_lens.demo.walkthrough`): the
   embedded Qwen2.5-Coder-0.5B on corrigible-neutral-HHH (from ``--data-dir``/
   ``$W2S_DATA_DIR``, or downloaded when online; offline without a copy, the 100-item sample
   shipped with w2s-lens, ``corrigible-neutral-HHH-sample``, and the demo says so). CAA
   vectors from :data:`~w2s_lens.demo.walkthrough.DEMO_N_TRAIN` training items (both letter
   orders), then a real sweep (the fast engine, every multiplier) of
   :data:`~w2s_lens.demo.walkthrough.DEMO_N_TEST` test items in both letter orders at
   **every layer** (:func:`~w2s_lens.demo.walkthrough.demo_config`; ``--n-train``,
   ``--n-test`` and ``--layers`` win). With the letter readout the sweep's cost is mostly the
   prompt's own forward pass, so all 23 layers cost about 1.2x four of them, and 1.6x the
   first-order estimate (:mod:`w2s_lens.sweep.first_order`) of the same items: the demo
   measures instead of estimating. :func:`~w2s_lens.demo.reading.read_sweep` turns the sweep
   into the demo's reading (:class:`~w2s_lens.demo.reading.ModelReading`): where the
   behaviour is encoded (the mean steerability of every layer with its interval, each item's
   best layer), the fixed layer's effect with its interval, and what per-input routing could
   gain (the oracle − fixed, in-sample as an upper bound and cross-validated across the two
   letter orders). No router is trained on the real model here: ``w2s-lens evaluate`` does
   that (and costs an order of magnitude more). The sweep directory (``out/model``) gets an
   HTML report.

Before the model stage the demo picks the torch thread count
(:func:`~w2s_lens.demo.walkthrough.pick_threads`) unless ``threads`` is given: on a machine
shared with other jobs, two threads measured 3-4x slower than one
(analysis/results/demo_wall_times.md). :func:`~w2s_lens.demo.walkthrough.run_demo` runs both
stages.

May import: every part of the package below the command line (``data`` … ``report``) and
itself; only :mod:`w2s_lens.cli` imports it.

Example:
    >>> from w2s_lens.demo.walkthrough import run_demo
    >>> from w2s_lens.evaluation.config import EvalConfig
    >>> run_demo(EvalConfig(dataset="corrigible-neutral-HHH"), "runs/demo")  # doctest: +SKIP
"""
