"""RadLens imaging and inference core.

This package never imports Qt, and imports torch, SimpleITK and nibabel only inside the
functions that need them, so the batch CLI starts fast and runs headless.
"""

__version__ = "0.1.0"
