"""The named choices have one owner, re-exported by the modules that implement them."""

from w2s_lens import choices


def test_owners_reexport_the_same_tuples():
    from w2s_lens.data import examples, prompts
    from w2s_lens.routing import embeddings
    from w2s_lens.routing import routers as router
    from w2s_lens.steering import scales
    from w2s_lens.sweep import runner as sweep

    assert prompts.VARIANTS is choices.VARIANTS
    assert router.ROUTER_KINDS is choices.ROUTER_KINDS
    assert embeddings.EMBEDDINGS is choices.EMBEDDINGS
    assert examples.READOUTS is choices.READOUTS
    assert sweep.ENGINES is choices.ENGINES and sweep.DEFAULT_MULTIPLIERS is \
        choices.DEFAULT_MULTIPLIERS
    assert scales.SCALES is choices.SCALES


def test_default_model_is_registered():
    from w2s_lens.models.loading import DEFAULT_MODEL, EMBEDDED_MODELS

    assert DEFAULT_MODEL == choices.DEFAULT_MODEL and DEFAULT_MODEL in EMBEDDED_MODELS


def test_every_router_kind_has_an_estimator():
    from w2s_lens.routing.estimators import ESTIMATOR_KINDS, build_estimator

    assert set(choices.ROUTER_KINDS) <= set(ESTIMATOR_KINDS)
    assert all(hasattr(build_estimator(kind), "fit") for kind in choices.ROUTER_KINDS)
