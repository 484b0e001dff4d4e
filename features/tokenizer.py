"""Which word segmenter a process uses, recorded in every model and checked when one is loaded.

Two segmenters of the same dictionary are available: jieba (pure Python) and rjieba (jieba-rs, the same
algorithm in Rust, many times faster). Their segmentations are nearly but not exactly equal, so a model
must be served with the segmenter, version and domain dictionary it was trained with: the router's
vocabulary and the risk model's text features are keyed by its tokens. `TokenizerSpec` names all three
(the dictionary as a digest of the user dictionary and stop words); training records it in the model's
metadata, and loading a model (`ensure`) makes the process use it, or refuses with the reason when the
process cannot (another version installed, another dictionary, or a model with another segmenter
already being served by this process).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from importlib import metadata, resources
from typing import Any

logger = logging.getLogger(__name__)

NAMES = ("jieba", "rjieba")
#: What a model that records no segmenter (trained before this existed) was trained with.
LEGACY = "jieba"
#: What training segments with unless its config says otherwise (`training.config.TrainConfig.tokenizer`).
DEFAULT = "rjieba"

_lock = threading.Lock()
_state: dict[str, Any] = {"name": LEGACY, "segment": None, "held_by_model": False}
_listeners: list[Callable[[], None]] = []
#: Segmenters being built in a thread (`build_early`), by name, until `segmenter` takes one.
_early: dict[str, Future[Callable[[str], list[str]]]] = {}


class TokenizerMismatch(RuntimeError):
    """This process cannot segment text the way the model's training did."""


@dataclass(frozen=True)
class TokenizerSpec:
    name: str
    version: str
    dictionary: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def describe(self) -> str:
        return f"{self.name} {self.version} (dictionary {self.dictionary[:12]})"


def _data(name: str) -> bytes:
    return resources.files("features").joinpath("data", name).read_bytes()


def data_lines(name: str) -> list[str]:
    """Non-comment lines of a versioned data file shipped inside the package (dictionary, stop words)."""
    text = _data(name).decode("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def dictionary_digest() -> str:
    """What the tokens depend on besides the segmenter: the domain user dictionary and the stop words."""
    h = hashlib.sha256()
    for name in ("user_dict.txt", "stop_words.txt"):
        h.update(name.encode() + b"\0" + _data(name) + b"\0")
    return h.hexdigest()


def spec(name: str | None = None) -> TokenizerSpec:
    """The spec of `name` as installed here (default: the process's segmenter)."""
    name = name or _state["name"]
    if name not in NAMES:
        raise TokenizerMismatch(f"unknown tokenizer {name!r}; expected one of {', '.join(NAMES)}")
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        version = "not installed"
    return TokenizerSpec(name, version, dictionary_digest())


def active() -> str:
    return str(_state["name"])


def on_change(listener: Callable[[], None]) -> None:
    """Call `listener` whenever the segmenter changes (caches of tokens must be dropped)."""
    _listeners.append(listener)


def use(name: str) -> None:
    """Segment with `name` from now on (training chooses; tests switch back). Not for a serving process
    holding a model: loading models goes through `ensure`."""
    if name not in NAMES:
        raise TokenizerMismatch(f"unknown tokenizer {name!r}; expected one of {', '.join(NAMES)}")
    with _lock:
        _switch(name)
        _state["held_by_model"] = False
        _drop_early_except(name)


def ensure(recorded: Mapping[str, Any] | None) -> None:
    """Make this process segment as the model recorded, or raise `TokenizerMismatch` saying why not."""
    wanted = TokenizerSpec(**recorded) if recorded else None
    name = wanted.name if wanted else LEGACY
    here = spec(name)
    if wanted is not None and (wanted.version, wanted.dictionary) != (here.version, here.dictionary):
        raise TokenizerMismatch(
            f"the model was trained with {wanted.describe()}; this process has {here.describe()}: install the "
            "versions the model was trained with (constraints.txt) or retrain it"
        )
    with _lock:
        if _state["name"] != name:
            if _state["held_by_model"]:
                raise TokenizerMismatch(
                    f"the model was trained with {name}, but this process serves a model trained with "
                    f"{_state['name']}; one process segments one way: restart it with the new model"
                )
            _switch(name)
        _state["held_by_model"] = True
        _drop_early_except(name)


def release() -> None:
    """Offline evaluation of several models in one process (promotion compares two): let the next model
    loaded set the segmenter, whatever the one loaded before used."""
    with _lock:
        _state["held_by_model"] = False


def evaluate_with(recorded: Mapping[str, Any] | None) -> None:
    """Segment as `recorded` says before scoring that model offline (`release`, then `ensure`)."""
    release()
    ensure(recorded)


def segmenter() -> Callable[[str], list[str]]:
    """The process's segmenter, with the domain dictionary loaded (once; about a second for jieba)."""
    segment = _state["segment"]
    if segment is not None:
        return segment
    with _lock:
        if _state["segment"] is None:
            name = _state["name"]
            early = _early.pop(name, None)
            _state["segment"] = early.result() if early is not None else _build(name)
        return _state["segment"]


def build_early(name: str = DEFAULT) -> None:
    """Start building segmenter ``name`` in a thread, for `segmenter` to take when ``name`` is the one asked for.

    Why: loading a model (decompressing and unpickling it) and building rjieba's dictionary took 0.56 s one
    after the other; rjieba's Rust constructor lets the unpickling thread run, and the two together took
    0.42 s. Called before a model is loaded, when the segmenter it records is not yet known: ``name`` is the
    guess (what training uses by default). A wrong guess costs a thread's work, never a wrong segmentation.
    """
    with _lock:
        if _state["held_by_model"] or (_state["segment"] is not None and _state["name"] == name) or name in _early:
            return  # a process holding a model loads only models of its segmenter (`ensure`): nothing to guess
        future: Future[Callable[[str], list[str]]] = Future()
        _early[name] = future

    def run() -> None:
        try:
            future.set_result(_build(name))
        except BaseException as exc:  # raised where the segmenter is asked for, as building it there would
            future.set_exception(exc)

    threading.Thread(target=run, name=f"build-{name}", daemon=True).start()


# A forked child has none of the parent's threads: a build still running there would never finish here.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_early.clear)


def _drop_early_except(name: str) -> None:
    """Forget segmenters built early for another name (a wrong guess): its thread ends, its memory goes."""
    for other in [n for n in _early if n != name]:
        del _early[other]


def _switch(name: str) -> None:
    if _state["name"] == name:
        return
    _state["name"], _state["segment"] = name, None
    for listener in _listeners:
        listener()
    logger.info("word segmenter: %s", name)


def _build(name: str) -> Callable[[str], list[str]]:
    words = data_lines("user_dict.txt")
    if name == "rjieba":
        import rjieba

        engine = rjieba.Jieba()
        for word in words:
            engine.add_word(word, None, None)  # freq and tag as jieba infers them
        logger.info("rjieba segmenter initialised with the domain user dictionary")
        return lambda text: engine.cut(text, False)
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    for word in words:
        tokenizer.add_word(word)
    logger.info("jieba tokenizer initialised with the domain user dictionary")
    return lambda text: tokenizer.lcut(text, HMM=False)
