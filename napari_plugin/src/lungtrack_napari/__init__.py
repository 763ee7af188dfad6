"""napari plugin for lungtrack: a thin shell over the library (no computation here).

Contributions are declared in ``napari.yaml``: a reader for TIFF / OME-TIFF, a
synthetic sample section, and a segmentation widget.
"""
from ._reader import channel_colormap, get_reader, image_layer_data
from ._sample_data import synthetic_section
from ._widget import segment_widget

__version__ = "0.1.0"
__all__ = ["get_reader", "image_layer_data", "channel_colormap", "synthetic_section", "segment_widget"]
