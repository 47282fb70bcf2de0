"""The named choices have one owner and one import home: ``w2s_lens.choices``."""

import pytest

from w2s_lens import choices


def test_the_choices_have_one_import_home():
    import ast
    from pathlib import Path

    import w2s_lens

    owned = set(choices.__all__)
    for path in Path(w2s_lens.__file__).parent.rglob("*.py"):
        if path.name == "__init__.py" or path.name == "choices.py":
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                listed = {e.value for e in node.value.elts if isinstance(e, ast.Constant)}
                imported = {a.asname or a.name for n in tree.body
                            if isinstance(n, ast.ImportFrom) and n.module == "w2s_lens.choices"
                            for a in n.names}
                assert not (listed & imported & owned) or path.name == "runner.py", path


def test_default_model_is_registered():
    from w2s_lens.models.registry import DEFAULT_MODEL, EMBEDDED_MODELS

    assert DEFAULT_MODEL == choices.DEFAULT_MODEL and DEFAULT_MODEL in EMBEDDED_MODELS


def test_every_router_kind_has_an_estimator():
    from w2s_lens.routing.estimators import ESTIMATOR_KINDS, build_estimator

    assert set(choices.ROUTER_KINDS) <= set(ESTIMATOR_KINDS)
    assert all(hasattr(build_estimator(kind), "fit") for kind in choices.ROUTER_KINDS)


def test_kinds_are_enums_whose_members_are_their_strings():
    import json

    from w2s_lens.choices import Engine, Method, Readout

    assert choices.METHODS == ("caa", "l2s", "both") and choices.READOUTS == ("letter", "cloze")
    assert choices.ENGINES == ("fast", "naive")
    assert Method("both").runs == ("caa", "l2s") and Method.L2S.runs == ("l2s",)
    assert Readout.LETTER.has_letter_orders and not Readout.CLOZE.has_letter_orders
    assert Readout.CLOZE.scores_options and not Readout.LETTER.scores_options
    assert Engine.FAST.captures and not Engine.NAIVE.captures
    assert json.dumps([Readout.CLOZE, Method.BOTH]) == '["cloze", "both"]'  # run.json values


def test_router_kinds_are_one_enum_that_owns_classifier_or_curve():
    from w2s_lens.choices import RouterKind
    from w2s_lens.routing.estimators import CLASSIFIER_KINDS, CURVE_KINDS, GRIDS, build_estimator

    assert choices.ROUTER_KINDS == ("logreg", "mlp", "curve", "knn")
    assert CLASSIFIER_KINDS == ("logreg", "mlp") and CURVE_KINDS == ("curve", "knn")
    assert [k.classifies for k in RouterKind] == [True, True, False, False]
    assert set(GRIDS) == set(choices.ROUTER_KINDS)
    assert type(build_estimator(RouterKind.CURVE)).__name__ == "Pipeline"
    with pytest.raises(ValueError, match="unknown router kind 'svm'"):
        build_estimator("svm")


def test_embeddings_are_one_enum_that_owns_what_each_needs():
    from w2s_lens.choices import Embedding

    assert choices.EMBEDDINGS == ("resid-last", "resid-mean", "minilm")
    assert [e.reads_residual for e in Embedding] == [True, True, False]
    assert [e.needs_text_encoder for e in Embedding] == [False, False, True]
    assert [e.captured_in_sweep for e in Embedding] == [True, False, False]
    assert [e.name_at(12) for e in Embedding] == ["resid-last@12", "resid-mean@12", "minilm"]
    assert [e.width(896, 384) for e in Embedding] == [896, 896, 384]
    assert Embedding("minilm") is Embedding.MINILM and Embedding.MINILM == "minilm"


def test_router_views_are_one_enum_that_owns_needs_width_and_names():
    from w2s_lens.choices import RouterView

    assert choices.ROUTER_INPUTS == ("question", "options", "question+options", "minilm")
    assert [v.needs_question for v in RouterView] == [True, False, True, False]
    assert [v.needs_option_residuals for v in RouterView] == [False, True, True, False]
    assert [v.needs_text_encoder for v in RouterView] == [False, False, False, True]
    assert [v.needs_options for v in RouterView] == [False, True, True, True]
    # d_model 32, a question embedding of 32 (resid-*) or 384 (minilm), MiniLM's 384
    assert [v.width(32, 32, 384) for v in RouterView] == [32, 66, 98, 768]
    assert RouterView.QUESTION_OPTIONS.width(32, 384, 384) == 384 + 66
    assert [v.router_name("knn") for v in RouterView] == [
        "knn", "knn@options", "knn@question+options", "knn@minilm"]
    assert [v.embedding_name("resid-mean@7") for v in RouterView] == [
        "resid-mean@7", "options@7", "resid-mean@7+options@7", "minilm-options"]
    assert RouterView.OPTIONS.embedding_name("minilm") == "options@?"
