"""Image verification and mapping: verify, then map, from the same bytes."""

from loader.image import LoadedImage, load_image, read_image_file

__all__ = ["LoadedImage", "load_image", "read_image_file"]
