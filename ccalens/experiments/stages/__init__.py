"""The stages of an experiment run. Each takes the :class:`RunContext`, writes its files under the output folder
and its section of the report (opening with a conclusion computed from its numbers), and returns its part of
``results.json``; :mod:`ccalens.experiments.runner` runs them in order.

* :func:`networks_stage` (:mod:`~.networks`): load the data, train one network per (sensor, seed);
* :func:`projection_stage`, :func:`cross_sensor_stage` (:mod:`~.projection`): Moreau et al.'s projection
  experiment on each sensor and on the grid of sensor pairs;
* :func:`fusion_stage` (:mod:`~.fusion`): CCA fusion against logit averaging;
* :func:`svcca_stage` (:mod:`~.svcca`): learning dynamics, two initialisations, compression;
* :func:`conv_network_stage` (:mod:`~.conv_network`): a CNN on the pix images, its SVCCA studies on conv layers
  by DFT-CCA and ``compare_models`` of two seeds;
* :func:`language_model_stage` (:mod:`~.language_model`): a stacked LSTM language model's learning dynamics
  (SVCCA paper App. 6);
* :func:`sanity_stage` (:mod:`~.sanity`): the SVCCA paper's synthetic sanity figures.
"""

from ccalens.experiments.stages.context import RunContext
from ccalens.experiments.stages.conv_network import conv_network_stage
from ccalens.experiments.stages.fusion import fusion_stage
from ccalens.experiments.stages.language_model import language_model_stage
from ccalens.experiments.stages.networks import Networks, networks_stage
from ccalens.experiments.stages.projection import cross_sensor_stage, projection_stage
from ccalens.experiments.stages.sanity import sanity_stage
from ccalens.experiments.stages.svcca import svcca_stage

__all__ = [
    "Networks",
    "RunContext",
    "conv_network_stage",
    "cross_sensor_stage",
    "fusion_stage",
    "language_model_stage",
    "networks_stage",
    "projection_stage",
    "sanity_stage",
    "svcca_stage",
]
