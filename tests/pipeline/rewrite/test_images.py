"""An image's declared size (what the byte budget and max_bytes count)."""

from edge.pipeline.rewrite.images import declared_image_bytes


def test_declared_image_bytes():
    assert declared_image_bytes({"data-edge-bytes": "12", "width": "1", "height": "1"}) == 12
    assert declared_image_bytes({"width": "100", "height": "50"}, 0.25) == 1250
    assert declared_image_bytes({"width": "100", "height": "auto"}) is None
    assert declared_image_bytes({"data-edge-bytes": "lots"}) is None
    assert declared_image_bytes({"data-edge-bytes": "٣"}) is None  # a non-ASCII digit is not a size
