"""napari plugin for lungtrack: a thin shell over the library (no computation here).

Contributions are declared in ``napari.yaml``: a reader (TIFF / OME-TIFF / ImageJ,
label images, OME-Zarr, lungtrack results folders), writers (labels, results folder),
synthetic sample data (2D section, z-stack) and widgets: Segment, Colocalization,
MSC-macrophage interactions, Experiment, Export and Open image.
"""
from ._reader import channel_colormap, get_reader, image_layer_data, results_layer_data
from ._sample_data import synthetic_section, synthetic_zstack
from ._widget import segment_layers, segment_widget
from ._writer import write_labels_layer, write_results

__version__ = "0.1.0"
__all__ = ["get_reader", "image_layer_data", "results_layer_data", "channel_colormap", "synthetic_section",
           "synthetic_zstack", "segment_layers", "segment_widget", "write_labels_layer", "write_results"]
