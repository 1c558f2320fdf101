"""Public names of the torch module (``hooks``) and the dask module (``distributed``).

Listed here, without importing torch or dask, so that ``ccalens.extract`` can offer them lazily; the
modules themselves take their ``__all__`` from here.
"""

HOOKS = (
    "ActivationBatch",
    "Activations",
    "LayerNotFoundError",
    "LayerSummary",
    "StoredActivations",
    "describe_layers",
    "extract",
    "iter_activations",
    "list_layers",
    "model_fingerprint",
)
DASK = ("DaskWorkersLostError", "stats_with_dask", "store_to_dask_array")
