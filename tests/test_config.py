"""Typed experiment configs: every shipped config parses; unknown keys and wrong types raise naming the key."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from ccalens.experiments.config import ExperimentConfig, parse_config


def _shipped() -> list[str]:
    folder = resources.files("ccalens.experiments") / "configs"
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".toml"))


@pytest.mark.parametrize("name", _shipped())
def test_every_shipped_config_parses(name):
    text = (resources.files("ccalens.experiments") / "configs" / name).read_text(encoding="utf-8")
    cfg = parse_config(tomllib.loads(text))
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.title and cfg.title != ExperimentConfig().title
    if cfg.needs_networks:
        assert cfg.training is not None and len(cfg.training.seeds) >= 2


def test_demo_config_values_reach_the_typed_tables():
    text = (resources.files("ccalens.experiments") / "configs" / "demo.toml").read_text(encoding="utf-8")
    cfg = parse_config(tomllib.loads(text))
    assert cfg.sanity is not None and cfg.sanity.n_samples == 2000 and cfg.sanity.abc_samples == 4000
    assert cfg.training.seeds == (0, 1, 2, 3) and cfg.training.train.epochs == 40
    assert cfg.training.train.lr_milestones == (30,)
    assert cfg.projection.pairs == 2 and cfg.projection.repeats == 3 and cfg.projection.retrain
    # the retrained layer follows the networks' own recipe
    assert cfg.projection.retrain_config.epochs == 40 and cfg.projection.retrain_config.weight_decay == 1e-4
    assert cfg.cross_sensor.methods == ("cca_highest", "cca_lowest", "cca_random", "pca")
    assert cfg.fusion.settings.svm_kernel == "linear" and cfg.fusion.pairs is None
    assert cfg.learning_dynamics.sensor == "pix" and cfg.learning_dynamics.checkpoint_every == 24
    assert cfg.compression.references == ("other_seed", "logits")
    assert cfg.report.metric == "accuracy"
    assert cfg.data.to_mapping()["views"] == ["fou", "fac", "kar", "pix", "zer", "mor"]
    assert cfg.model.to_kwargs() == {"hidden": (256, 128), "dropout": 0.2}


_NETWORKS = '[data]\nviews = ["kar", "zer"]\n[training]\nseeds = [0, 1]\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sanity]\nn_sampels = 300",
         r"^\[sanity\] unknown key 'n_sampels'; expected one of "
         r"\['abc_noise_levels', 'abc_noise_std', 'abc_samples', "),
        (_NETWORKS + "[compression]\nrepeets = 2", r"^\[compression\] unknown key 'repeets'"),
        (_NETWORKS + "[learning_dynamics]\ncheckpoint_evry = 5", r"^\[learning_dynamics\] unknown key 'checkpoint_e"),
        (_NETWORKS + "[two_initialisations]\nprobe = 5", r"^\[two_initialisations\] unknown key 'probe'"),
        (_NETWORKS + "[projection]\nrepeat = 2", r"^\[projection\] unknown key 'repeat'"),
        (_NETWORKS + "[cross_sensor]\nmethod = []", r"^\[cross_sensor\] unknown key 'method'"),
        (_NETWORKS + "[projection.retrain_hparams]\nepoch = 2",
         r"^\[projection.retrain_hparams\] unknown key 'epoch'"),
        (_NETWORKS + "[fusion]\nsvm_cc = 1.0", r"^\[fusion\] unknown key 'svm_cc'"),
        ("[training]\nepoch = 3", r"^\[training\] unknown key 'epoch'"),
        ("[training]\nseed = 3", r"^\[training\] unknown key 'seed'"),  # set per network: never silently dropped
        ("[data]\nview = ['kar']", r"^\[data\] unknown key 'view'"),
        ("[model]\nhiden = [4]", r"^\[model\] unknown key 'hiden'"),
        ("[report]\nmetrc = 'accuracy'", r"^\[report\] unknown key 'metrc'"),
        ("[projekt]", r"^unknown top-level table or key 'projekt'"),
        ("titel = 'x'", r"^unknown top-level table or key 'titel'"),
    ],
)
def test_unknown_keys_are_refused_in_every_table(text, message):
    with pytest.raises(ValueError, match=message):
        parse_config(tomllib.loads(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_NETWORKS + "[projection]\nrepeats = 'three'",
         r"^\[projection\] repeats must be a number \(an integer\), got the string 'three'$"),
        (_NETWORKS + "[projection]\nretrain = 1", r"^\[projection\] retrain must be a boolean, got the number 1$"),
        (_NETWORKS + "[projection]\nk_values = [1, 'a']", r"^\[projection\] k_values must be a list of integers"),
        (_NETWORKS + "[projection.retrain_hparams]\nlr = 'fast'", r"^\[projection.retrain_hparams\] lr must be a num"),
        ("[sanity]\nn_samples = 300.5", r"^\[sanity\] n_samples must be a number \(an integer\), got the number 300.5"),
        ("[sanity]\nn_samples = true", r"^\[sanity\] n_samples must be a number \(an integer\), got the boolean True$"),
        ("[training]\nepochs = '40'", r"^\[training\] epochs must be a number \(an integer\), got the string '40'$"),
        ("[training]\nseeds = 3", r"^\[training\] seeds must be a list of integers, got the number 3$"),
        ("[training]\nlr_milestones = 30", r"^\[training\] lr_milestones must be a list of integers"),
        ("[model]\nhidden = 4", r"^\[model\] hidden must be a list of integers"),
        ("[data]\nviews = 'kar'", r"^\[data\] views must be a list of strings"),
        (_NETWORKS + "[fusion]\npairs = [['kar']]", r"^\[fusion\] pairs must be a list of pairs"),
        (_NETWORKS + "[compression]\nlayers = 'fc'", r"^\[compression\] layers must be a list of strings"),
        (_NETWORKS + "[learning_dynamics]\nthreshold = 'high'", r"^\[learning_dynamics\] threshold must be a number"),
        ("threads = 'all'", r"^threads must be a number \(an integer\), got the string 'all'$"),
        ("title = 3", r"^title must be a string, got the number 3$"),
        ("sanity = 3", r"^sanity must be a table \(\[sanity\]\), got the number 3$"),
    ],
)
def test_wrong_types_are_refused_naming_the_key(text, message):
    with pytest.raises(ValueError, match=message):
        parse_config(tomllib.loads(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sanity]\nn_samples = 0", r"^\[sanity\] n_samples must be >= 1, got 0$"),
        ("[training]\nepochs = 0", r"^\[training\] epochs must be >= 1"),
        ("[training]\npreset = 'to_dict'", r"^\[training\] preset must be one of"),
        ("[training]\nseeds = [0, 0]", r"^\[training\] seeds must be different"),
        (_NETWORKS + "[projection]\nmethods = ['cca_best']", r"^\[projection\] methods must be a non-empty subset"),
        (_NETWORKS + "[projection.retrain_hparams]\ninit = 'ones'", r"^\[projection.retrain_hparams\] init must be"),
        (_NETWORKS + "[fusion]\nsvm_kernel = 'cubic'", r"^\[fusion\] svm_kernel must be"),
        (_NETWORKS + "[compression]\nreferences = ['pca']", r"^\[compression\] references must be"),
        ("[report]\nmetric = 'f1'", r"^\[report\] metric must be one of \['accuracy', 'macro_f1'\], got 'f1'$"),
        ("[data]\ndataset = 'mnist'", r"^\[data\] dataset must be one of"),
        ("[data]\ndataset = 'shl2018'\nviews = ['kar']", r"^\[data\] views does not apply to dataset 'shl2018'"),
        ("[model]\ndepth = 20", r"^\[model\] depth does not apply to dataset 'multiple_features'"),
        ("threads = -1", r"^threads must be >= 0"),
    ],
)
def test_out_of_range_values_name_the_table(text, message):
    with pytest.raises(ValueError, match=message):
        parse_config(tomllib.loads(text))


def test_training_overrides_apply_over_the_preset():
    cfg = parse_config(tomllib.loads("[training]\npreset = 'shl_paper'\nepochs = 3\nlr_milestones = [2]\n"
                                     "[projection]\n[projection.retrain_hparams]\nepochs = 1"))
    train = cfg.training.train
    assert (train.epochs, train.lr_milestones, train.class_weighted, train.weight_decay) == (3, (2,), True, 1e-3)
    retrain = cfg.projection.retrain_config
    assert (retrain.epochs, retrain.lr_milestones, retrain.class_weighted) == (1, (2,), True)


def test_sanity_only_config_needs_no_training():
    cfg = parse_config(tomllib.loads("[sanity]\n"))
    assert cfg.training is None and not cfg.needs_networks and cfg.sanity.n_samples == 2000


def test_run_config_refuses_a_typo_before_running(tmp_path):
    from ccalens.experiments.runner import run_config

    config = tmp_path / "typo.toml"
    config.write_text("[sanity]\nn_sampels = 300\n")  # used to run silently with the default 2,000 samples
    with pytest.raises(ValueError, match=r"typo.toml: \[sanity\] unknown key 'n_sampels'"):
        run_config(config, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_too_few_seeds_for_the_pairs_is_refused_before_training(tmp_path):
    from ccalens.experiments.runner import run_config

    config = tmp_path / "pairs.toml"
    config.write_text('[data]\nviews = ["kar"]\n[training]\nseeds = [0, 1]\nepochs = 1\n[projection]\npairs = 2\n')
    with pytest.raises(ValueError, match=r"\[projection\] pairs = 2 needs at least 4 seeds"):
        run_config(config, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "models").exists()
