"""altlas: the CUDA-accelerated core of ALT_LAS (command segmentation and model serving)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
