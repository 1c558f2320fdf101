"""Public names of the torch module (``hooks``), the model comparison (``compare``) and the dask module
(``distributed``).

Listed here, without importing torch or dask, so that ``ccalens.extract`` can offer them lazily; the
modules themselves take their ``__all__`` from here.
"""

HOOKS = (
    "ActivationBatch",
    "Activations",
    "LayerCapture",
    "LayerNotFoundError",
    "LayerSummary",
    "StoredActivations",
    "describe_layers",
    "extract",
    "iter_activations",
    "list_layers",
    "model_fingerprint",
)
COMPARE = ("CrossSimilarity", "compare_models")
DASK = ("DaskWorkersLostError", "stats_with_dask", "store_to_dask_array")
