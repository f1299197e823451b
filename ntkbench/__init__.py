"""ntkbench: benchmark claims about neural networks versus their neural tangent kernels."""

__version__ = "0.1.0"


def load_results(path):
    """The results of a report directory, its ``results.json`` or a stored run record, as a
    pandas DataFrame (metadata in ``.attrs["metadata"]``)."""
    from ntkbench.outputs import load_results as load

    return load(path)
