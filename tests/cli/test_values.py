"""Tests for w2s_lens.cli.values: the value parsers refuse what cannot work with clear errors,
and the pre-flight checks name the option, the value and why."""

import argparse
import errno

import pytest

from w2s_lens.cli import values as cli_values
from w2s_lens.cli.values import (
    OptionError,
    cap,
    check_layer_options,
    finite,
    floats,
    layers,
    names,
    positive,
    threads,
    unwritable,
    usable_cores,
)


def test_value_parsers():
    assert floats("-1, 0,1.5,") == [-1.0, 0.0, 1.5]
    assert layers("15,3") == [3, 15] and layers("all") is None
    assert names(" logreg,,mlp ") == ["logreg", "mlp"]
    with pytest.raises(argparse.ArgumentTypeError, match="comma-separated numbers"):
        floats("a,b")
    with pytest.raises(argparse.ArgumentTypeError, match="'all' or comma-separated"):
        layers("x")
    with pytest.raises(argparse.ArgumentTypeError, match="non-negative"):
        layers("-1,2")
    assert cap("12") == 12 and cap("all") is None
    for bad in ("0", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive count or 'all'"):
            cap(bad)



@pytest.mark.parametrize("parse,text,match", [
    (floats, "nan,1", "finite numbers"), (floats, "-1,inf", "finite numbers"),
    (finite, "inf", "finite number"), (finite, "nan", "finite number"), (finite, "x", "a number"),
    (positive, "inf", "finite number"), (positive, "0", "above 0"), (positive, "-0.5", "above 0"),
])
def test_numbers_must_be_finite(parse, text, match):
    with pytest.raises(argparse.ArgumentTypeError, match=match):
        parse(text)


@pytest.mark.parametrize("text", ["100000", "-3", "0", "two", str(usable_cores() + 1)])
def test_threads_stay_within_the_usable_cores(text):
    with pytest.raises(argparse.ArgumentTypeError,
                       match=f"expected 1..{usable_cores()} \\(the cores this process may use\\)"):
        threads(text)
    assert threads("1") == 1 and threads(str(usable_cores())) == usable_cores()


def test_each_layer_is_named_once():
    with pytest.raises(argparse.ArgumentTypeError, match="8 given more than once"):
        layers("8,8")
    with pytest.raises(argparse.ArgumentTypeError, match="3, 5 given more than once"):
        layers("5,3,5,3,1")


def test_layer_options_stay_in_the_model_and_w2s_gets_two():
    check_layer_options("m", 30, {"--layers": [1, 29], "--embedding-layer": 15}, at_least=2)
    check_layer_options("m", None, {"--embedding-layer": 999})  # shape unknown: no range check
    with pytest.raises(OptionError, match="--embedding-layer 999 is outside m's layers 0..29"):
        check_layer_options("m", 30, {"--embedding-layer": 999})
    with pytest.raises(OptionError, match="--layers 30,31 is outside m's layers 0..29"):
        check_layer_options("m", 30, {"--layers": [3, 30, 31]})
    with pytest.raises(OptionError, match="--layers 8: W2S .* at least 2 layers"):
        check_layer_options("m", None, {"--layers": [8]}, at_least=2)


def test_unwritable_destinations_are_named_before_any_work(tmp_path, monkeypatch):
    assert unwritable(tmp_path / "new" / "run") is None
    assert not (tmp_path / "new").exists()  # the probe leaves nothing behind
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("x")
    assert unwritable(tmp_path / "f" / "run") == (
        f"--out {tmp_path}/f/run: cannot create it, {tmp_path}/f is a file")
    assert unwritable(tmp_path / "f") is None  # an existing file: the command explains it

    with monkeypatch.context() as m:
        m.setattr(cli_values.shutil, "disk_usage", lambda path: type("U", (), {"free": 4096})())
        assert unwritable(tmp_path / "run") == (
            f"--out {tmp_path}/run: the disk holding {tmp_path} is full (under 16 MiB free)")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(cli_values.tempfile, "TemporaryFile", read_only)
    assert unwritable(tmp_path / "run", "--out") == (
        f"--out {tmp_path}/run: cannot write in {tmp_path} (Read-only file system)")
