"""A model is served only with the word segmenter it was trained with (issue 15: the tokeniser is a
recorded setting of the text pipeline, checked at load)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from features import tokenizer
from features.text import tokenise
from models.bundle import TriageBundle
from tests.mlflow_env import isolated_mlflow
from training.config import TrainConfig
from training.train import train

# A text the two segmenters cut differently would prove little; this one they cut alike, so the test
# checks which engine runs through the cache being dropped on a switch, not through the tokens.
TEXT = "青林区兰亭苑小区3栋地下室燃气味很重"


@pytest.fixture(autouse=True)
def back_to_jieba() -> Iterator[None]:
    tokenizer._early.clear()  # a segmenter another test's model load started building
    yield
    tokenizer.use("jieba")
    tokenizer._early.clear()


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The segmenters built from now on, by name (the process starts on jieba, its tokens of TEXT cached)."""
    tokenizer.use("jieba")
    tokenise(TEXT)
    names: list[str] = []
    real_build = tokenizer._build
    monkeypatch.setattr(tokenizer, "_build", lambda name: names.append(name) or real_build(name))
    return names


def test_a_segmenter_built_early_is_the_one_taken(built: list[str]) -> None:
    jieba_tokens = tokenise(TEXT)
    tokenizer.build_early("rjieba")
    tokenizer.build_early("rjieba")  # asked twice (two loads): built once
    tokenizer.ensure(tokenizer.spec("rjieba").as_dict())  # the model records the guessed segmenter
    assert tokenise(TEXT) == jieba_tokens
    assert built == ["rjieba"] and not tokenizer._early  # taken, not built a second time
    tokenizer.build_early("rjieba")  # already the process's segmenter: nothing to build
    assert built == ["rjieba"] and not tokenizer._early


def test_a_process_holding_a_model_guesses_nothing(built: list[str]) -> None:
    """A service reloading a jieba model would otherwise build an unused rjieba on every reload."""
    tokenizer.ensure(None)  # serves a jieba model
    tokenizer.build_early("rjieba")
    assert not tokenizer._early and built == []


def test_a_wrong_guess_is_dropped_and_the_recorded_segmenter_built(monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer.use("jieba")
    tokenizer.build_early("rjieba")
    tokenizer.release()
    tokenizer.ensure(None)  # a model trained before segmenters were recorded: jieba
    assert not tokenizer._early
    assert tokenizer.active() == "jieba" and tokenise(TEXT)


def test_a_failed_early_build_raises_where_the_segmenter_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str) -> None:
        raise OSError(f"{name}: dictionary unreadable")

    monkeypatch.setattr(tokenizer, "_build", broken)
    tokenizer.build_early("rjieba")
    tokenizer.use("rjieba")
    with pytest.raises(OSError, match="rjieba: dictionary unreadable"):
        tokenizer.segmenter()


def test_the_spec_names_segmenter_version_and_dictionary() -> None:
    for name in tokenizer.NAMES:
        spec = tokenizer.spec(name)
        assert spec.name == name and spec.version[0].isdigit() and len(spec.dictionary) == 64
    assert tokenizer.spec("jieba").dictionary == tokenizer.spec("rjieba").dictionary


def test_switching_segmenters_drops_cached_tokens(built: list[str]) -> None:
    jieba_tokens = tokenise(TEXT)  # cached
    tokenizer.use("rjieba")
    assert tokenise(TEXT) == jieba_tokens and built == ["rjieba"]  # re-segmented by rjieba, not cached


def test_loading_a_model_switches_the_process_or_refuses() -> None:
    tokenizer.use("jieba")
    tokenizer.ensure(tokenizer.spec("rjieba").as_dict())  # nothing held yet: the process follows the model
    assert tokenizer.active() == "rjieba"
    with pytest.raises(tokenizer.TokenizerMismatch, match="restart it with the new model"):
        tokenizer.ensure(None)  # a jieba model while an rjieba one is served
    other = {**tokenizer.spec("rjieba").as_dict(), "version": "0.0.1"}
    with pytest.raises(tokenizer.TokenizerMismatch, match=r"trained with rjieba 0\.0\.1.*install the versions"):
        tokenizer.ensure(other)
    changed = {**tokenizer.spec("rjieba").as_dict(), "dictionary": "0" * 64}
    with pytest.raises(tokenizer.TokenizerMismatch, match="dictionary 000000000000"):
        tokenizer.ensure(changed)


@pytest.mark.slow
def test_a_model_trained_with_rjieba_is_served_with_rjieba(
    demo_csv: Path, fast_config: TrainConfig, tmp_path: Path
) -> None:
    config = fast_config.model_copy(update={"tokenizer": "rjieba"})
    with isolated_mlflow(tmp_path):
        result = train([demo_csv], config)
    assert result.bundle.metadata["tokenizer"] == tokenizer.spec("rjieba").as_dict()
    result.bundle.save(tmp_path / "bundle")
    tokenizer.use("jieba")  # a fresh process would start with jieba
    loaded = TriageBundle.load(tmp_path / "bundle")
    assert tokenizer.active() == "rjieba"
    cases = [("小区地下室燃气味很重", "兰亭苑3栋燃气味很重已经两天"), ("请问孩子上小学报名要什么材料", "")]
    assert [r.label for r in loaded.route(cases)] == [r.label for r in result.bundle.route(cases)]


@pytest.mark.slow
def test_promotion_scores_each_model_with_its_own_segmenter(
    demo_csv: Path, fast_config: TrainConfig, tmp_path: Path
) -> None:
    """A champion trained with jieba and a candidate trained with rjieba can still be compared in one
    process (the upgrade path): each is scored with the segmenter it was trained with."""
    import pandas as pd

    from training.comparison import load_comparison_set

    frame = pd.read_csv(demo_csv, dtype=str, keep_default_na=False)
    frame.iloc[::4].to_csv(tmp_path / "comparison.csv", index=False)
    frame.drop(frame.index[::4]).to_csv(tmp_path / "rest.csv", index=False)
    with isolated_mlflow(tmp_path):
        champion = train([tmp_path / "rest.csv"], fast_config.model_copy(update={"tokenizer": "jieba"}))
        candidate = train([demo_csv], fast_config.model_copy(update={"tokenizer": "rjieba"}),
                          comparison=load_comparison_set(tmp_path / "comparison.csv"))
    assert champion.bundle.metadata["tokenizer"]["name"] == "jieba"
    assert candidate.bundle.metadata["tokenizer"]["name"] == "rjieba"
    outcome = candidate.comparison
    assert outcome is not None and outcome.candidate is not None and outcome.champion is not None, \
        candidate.alias_reason
    assert outcome.n_eval == 195 and "TokenizerMismatch" not in candidate.alias_reason


def test_the_early_guess_is_what_training_uses_by_default() -> None:
    assert TrainConfig().tokenizer == tokenizer.DEFAULT


def test_a_child_forked_while_the_build_runs_builds_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """The build's thread is not copied into a forked child: waiting for it there would wait forever."""
    import os
    import time

    real_build = tokenizer._build
    monkeypatch.setattr(tokenizer, "_build", lambda name: time.sleep(1.0) or real_build(name))
    tokenizer.build_early("rjieba")
    pid = os.fork()
    if pid == 0:  # the child: build and segment, then leave without running the parent's test teardown
        try:
            tokenizer.use("rjieba")
            os._exit(0 if tokenise(TEXT) else 1)
        except BaseException:
            os._exit(2)
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child waited for a build that only its parent was running")
    assert os.waitstatus_to_exitcode(done[1]) == 0
