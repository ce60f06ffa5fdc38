"""The data layer shared by calibration, evaluation and training.

Open anything with :func:`open_source`, pick images with :func:`stratified_sample` or
:func:`split_indices`, and feed them through :func:`iter_batches` (evaluation) or
:class:`BatchReader` (calibration), which share one preprocessing path.

Imports only numpy and Pillow: no torch, onnxruntime or scikit-learn.
"""

from __future__ import annotations

from edgeres.data.cifar import CIFAR10_MD5, CIFAR10_URL, cifar_source, download_cifar10, find_cifar
from edgeres.data.digits import digits_source
from edgeres.data.labels import LabelMap, align_labels
from edgeres.data.manifest import read_manifest, sha256_file, write_manifest
from edgeres.data.openers import open_source, register_source
from edgeres.data.preprocess import preprocess, preprocess_array, resize_and_crop, to_rgb
from edgeres.data.reader import BatchReader, SkippedImages, iter_batches, load_batch
from edgeres.data.sampling import split_indices, stratified_sample
from edgeres.data.sources import (
    IMAGE_EXTENSIONS,
    ArraySource,
    FileListSource,
    ImageSource,
    UnreadableImageError,
    folder_source,
    npz_source,
)

__all__ = [
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "IMAGE_EXTENSIONS",
    "ArraySource",
    "BatchReader",
    "FileListSource",
    "ImageSource",
    "LabelMap",
    "SkippedImages",
    "UnreadableImageError",
    "align_labels",
    "cifar_source",
    "digits_source",
    "download_cifar10",
    "find_cifar",
    "folder_source",
    "iter_batches",
    "load_batch",
    "npz_source",
    "open_source",
    "preprocess",
    "preprocess_array",
    "read_manifest",
    "register_source",
    "resize_and_crop",
    "sha256_file",
    "split_indices",
    "stratified_sample",
    "to_rgb",
    "write_manifest",
]
