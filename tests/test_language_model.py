"""App. 6 of the SVCCA paper: a stacked character LSTM on Python's own reference text, its learning dynamics
through the one capture path (every position a sample), and the stage's conclusion computed from the numbers."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ccalens  # noqa: E402
from ccalens.data.text import bigram_cross_entropy, load_python_reference, unigram_cross_entropy  # noqa: E402
from ccalens.errors import UnknownKeyError, UserInputError  # noqa: E402
from ccalens.experiments.config import parse_config  # noqa: E402
from ccalens.experiments.language_model import LanguageModelConfig, held_out_loss  # noqa: E402
from ccalens.experiments.learning_dynamics import convergence_steps, learning_dynamics  # noqa: E402
from ccalens.experiments.parallel import Workers  # noqa: E402
from ccalens.experiments.stages.language_model import language_model_conclusion  # noqa: E402
from ccalens.models.checkpoints import list_checkpoints, load_checkpoint  # noqa: E402
from ccalens.models.loop import TrainConfig, train_network  # noqa: E402
from ccalens.models.nets import CharLSTM  # noqa: E402


def test_corpus_windows_are_next_characters_and_fixed() -> None:
    a = load_python_reference(seq_len=12, n_train=50, n_val=8)
    b = load_python_reference(seq_len=12, n_train=50, n_val=8)
    assert a.X_train.shape == a.y_train.shape == (50, 12) and a.X_val.shape == (8, 12)
    np.testing.assert_array_equal(a.X_train, b.X_train)  # no randomness: the same windows every time
    np.testing.assert_array_equal(a.y_train[:, :-1], a.X_train[:, 1:])  # targets: the next character
    np.testing.assert_array_equal(a.y_val[:, :-1], a.X_val[:, 1:])
    assert a.vocab[0] == "\x00" and a.vocab_size == len(set(a.vocab))
    assert a.X_train.max() < a.vocab_size and a.X_train.min() >= 1  # training text has no unknown character
    assert len(a.source["sha256"]) == 64 and a.source["held_out_topics"] >= 1
    text = "".join(a.vocab[i] for i in a.X_train[0])
    assert text.isprintable() or "\n" in text


def test_corpus_asks_for_more_windows_than_the_text_has() -> None:
    with pytest.raises(ValueError, match=r"held-out text has .* fewer than"):
        load_python_reference(seq_len=64, n_train=10, n_val=10**6)
    with pytest.raises(ValueError, match="seq_len must be >= 1"):
        load_python_reference(seq_len=0)


def test_unigram_cross_entropy_is_the_smoothed_frequencies_loss() -> None:
    y_train, y_test = np.array([[1, 1, 2]]), np.array([[1, 3]])
    p = (np.array([0, 2, 1, 0]) + 1.0) / 7.0
    assert unigram_cross_entropy(y_train, y_test, 4) == pytest.approx(-(np.log(p[1]) + np.log(p[3])) / 2, rel=1e-12)


def test_bigram_cross_entropy_is_the_smoothed_pair_frequencies_loss() -> None:
    X_train, y_train = np.array([[1, 2, 1]]), np.array([[2, 1, 2]])
    counts = np.ones((3, 3))
    counts[1, 2] += 2
    counts[2, 1] += 1
    p = counts / counts.sum(axis=1, keepdims=True)
    got = bigram_cross_entropy(X_train, y_train, np.array([[1, 0]]), np.array([[2, 2]]), 3)
    assert got == pytest.approx(-(np.log(p[1, 2]) + np.log(p[0, 2])) / 2, rel=1e-12)


def test_char_lstm_shapes_and_input_check() -> None:
    model = CharLSTM(20, embedding=4, hidden=6, layers=3)
    x = torch.randint(0, 20, (5, 7))
    assert model(x).shape == (5, 7, 20) and model.features(x).shape == (5, 7, 6)
    assert model.feature_layer_names() == ["lstm1", "lstm2", "lstm3"]
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.zeros(5, 7))
    with pytest.raises(ValueError, match="layers must be >= 1"):
        CharLSTM(20, layers=0)


def _tiny_run(tmp_path):
    corpus = load_python_reference(seq_len=10, n_train=96, n_val=12)
    recipe = dataclasses.replace(TrainConfig.multiview_default(), optimizer="adam", lr=0.02, batch_size=16,
                                 epochs=2, lr_milestones=(), checkpoint_every=3, progress=False)
    model, history = train_network(functools.partial(CharLSTM, corpus.vocab_size, 4, 8, 2),
                                   (corpus.X_train, corpus.y_train), (corpus.X_val, corpus.y_val), recipe, seed=0,
                                   checkpoint_dir=tmp_path)
    return corpus, model, history


def test_trainer_takes_per_position_labels_and_checks_them(tmp_path) -> None:
    corpus, model, history = _tiny_run(tmp_path)
    assert history.total_steps == 12 and len(list_checkpoints(tmp_path)) >= 4
    loss, acc = held_out_loss(model, corpus.X_val, corpus.y_val)
    # brute force: the model's own logits, cross-entropy over every position
    with torch.no_grad():
        logits = model(torch.as_tensor(corpus.X_val)).double()
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                            torch.as_tensor(corpus.y_val).reshape(-1)).item()
    assert loss == pytest.approx(ref, rel=1e-5)  # float32 logits: a few units of 2^-24 of a sum over 20-odd logits
    assert 0 <= acc <= 1
    recipe = dataclasses.replace(TrainConfig.multiview_default(), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"per-position labels \(96, 9\) need inputs \(n, 9"):
        train_network(functools.partial(CharLSTM, corpus.vocab_size, 4, 8, 2),
                      (corpus.X_train, corpus.y_train[:, :9]), None, recipe, seed=0)


@pytest.mark.filterwarnings("ignore:with 120 samples")
def test_token_learning_dynamics_equals_svcca_of_the_hidden_states(tmp_path) -> None:
    corpus, model, _ = _tiny_run(tmp_path)
    ckpts = list_checkpoints(tmp_path)
    factory = functools.partial(copy.deepcopy, model)
    with Workers(1) as one, Workers(2) as two:
        ld = learning_dynamics(factory, ckpts, corpus.X_val, ["lstm1", "lstm2"], tokens=True, workers=one)
        split = learning_dynamics(factory, ckpts, corpus.X_val, ["lstm1", "lstm2"], tokens=True, workers=two)
    np.testing.assert_allclose(split["similarity"], ld["similarity"], rtol=0, atol=1e-12)

    def hidden(path):  # brute force: run the layers by hand, every position a row
        m = copy.deepcopy(model)
        load_checkpoint(path, m)
        m.eval()
        with torch.no_grad():
            z = m.embedding(torch.as_tensor(corpus.X_val))
            out = []
            for name in ("lstm1", "lstm2"):
                z, _ = getattr(m, name)(z)
                out.append(z.reshape(-1, z.shape[-1]).double().numpy())
        return out

    final = hidden(ckpts[-1][1])
    for t, (_, path) in enumerate(ckpts):
        for li, h in enumerate(hidden(path)):
            expected = ccalens.svcca(h, final[li], threshold=0.99).score
            # float32 hidden states of the same forward pass; the SVCCA of float64 copies of them
            assert ld["similarity"][li, t] == pytest.approx(expected, abs=1e-9)
    assert ld["similarity"][:, -1] == pytest.approx(1.0, abs=1e-9)


def test_convergence_steps_are_the_first_checkpoint_at_each_level() -> None:
    ld = {"layers": ["a", "b"], "steps": [0, 10, 20], "similarity": [[0.5, 0.93, 1.0], [0.2, 0.6, 1.0]]}
    rows = convergence_steps(ld, (0.9, 0.95))
    assert rows[0]["first step with SVCCA >= 0.9"] == 10 and rows[0]["first step with SVCCA >= 0.95"] == 20
    assert rows[1]["first step with SVCCA >= 0.9"] == 20 and rows[1]["SVCCA at first checkpoint"] == 0.2


def _rows(*steps):
    return [{"layer": f"lstm{i + 1}", "first step with SVCCA >= 0.9": s} for i, s in enumerate(steps)]


def test_conclusion_follows_the_numbers() -> None:
    held = {"loss": 2.5, "bigram_loss": 2.7, "unigram_loss": 3.2, "accuracy": 0.3}
    ordered = language_model_conclusion(held, _rows(30, 60, 90), [0.9], 30)
    assert "strictly in order" in ordered and "Verdict: lower layers converge first" in ordered
    assert "2.5 nats per character against 2.7 for the bigram" in ordered
    assert "uses more than the current character" in ordered
    tie = language_model_conclusion(held, _rows(30, 60, 60), [0.9], 30)
    assert "some at the same checkpoint" in tie and "Verdict: lower layers converge first" in tie
    wrong = language_model_conclusion({**held, "loss": 3.3}, _rows(90, 60, 60), [0.9], 30)
    assert "not in order" in wrong and "does not support" in wrong and "does not beat character frequencies" in wrong
    assert "does not beat a one-character context" in language_model_conclusion({**held, "loss": 2.9}, _rows(1, 2),
                                                                                  [0.9], 30)
    never = language_model_conclusion(held, _rows(30, None, 90), [0.9], 30)
    assert "lstm2 never" in never and "does not support" in never


def test_config_table_is_checked_at_the_edge() -> None:
    cfg = parse_config({"language_model": {"layers": 2, "hidden": 16}})
    assert cfg.language_model == LanguageModelConfig(layers=2, hidden=16) and cfg.needs_torch
    assert not cfg.needs_networks
    with pytest.raises(UnknownKeyError, match=r"\[language_model\] unknown key 'width'"):
        parse_config({"language_model": {"width": 3}})
    with pytest.raises(UserInputError, match=r"\[language_model\] layers must be >= 2"):
        parse_config({"language_model": {"layers": 1}})
    with pytest.raises(UserInputError, match=r"\[language_model\] corpus must be one of"):
        parse_config({"language_model": {"corpus": "shakespeare"}})
    with pytest.raises(UserInputError, match=r"\[language_model\].*threshold"):
        parse_config({"language_model": {"threshold": 1.5}})


def test_stage_writes_its_files_and_a_computed_conclusion(tmp_path) -> None:
    from ccalens.experiments.runner import run_config

    text = """
title = "lm"
[language_model]
seq_len = 8
train_sequences = 64
probe_sequences = 8
hidden = 8
embedding = 4
epochs = 1
lr_milestones = []
checkpoint_every = 2
"""
    config = tmp_path / "lm.toml"
    config.write_text(text)
    out = run_config(config, tmp_path / "run", progress=False)
    res = json.loads((tmp_path / "run" / "language_model" / "language_model.json").read_text())
    assert len(res["dynamics"]["steps"]) >= 2 and res["held_out"]["unigram_loss"] > 0
    assert (tmp_path / "run" / "language_model" / "learning_dynamics.png").exists()
    html = (tmp_path / "run" / "report.html").read_text()
    assert "App. 6" in html and "Verdict:" in html
    assert out is not None
