"""The tests' one source of image data: small ImageFolders of drawn images (``lib.data.demo``), written anew for a
test that changes them, or shared read-only within the session by every test that asks for the same shape."""
from pathlib import Path
from typing import Callable, Dict, Tuple

from lib.data.demo import make_demo_dataset


def write_demo_imagefolder(root, classes: int = 3, train: int = 4, val: int = 2, size: int = 32,
                           seed: int = 0) -> str:
    """``root/{train,val}/<class>/*.JPEG``: ``classes`` classes of ``train`` and ``val`` images of ``size`` px;
    ``root`` must not exist yet (or be empty). Returns ``root`` as an absolute path string, as DATA_DIR takes it."""
    return make_demo_dataset(str(root), num_classes=classes, train_per_class=train, val_per_class=val,
                             image_size=size, seed=seed)


class SharedDemoImageFolders:
    """``shared(classes=3, train=4, val=2, size=32)``: the ImageFolder of that shape, written on first request under
    ``make_dir(name)`` and then handed to every caller. Read-only: a test that changes its images writes its own with
    ``write_demo_imagefolder``."""

    def __init__(self, make_dir: Callable[[str], Path]):
        self._make_dir = make_dir
        self._written: Dict[Tuple[int, int, int, int], str] = {}

    def __call__(self, classes: int = 3, train: int = 4, val: int = 2, size: int = 32) -> str:
        shape = (classes, train, val, size)
        if shape not in self._written:
            folder = self._make_dir(f'demo_{classes}x{train}+{val}_{size}px')
            self._written[shape] = write_demo_imagefolder(folder / 'data', classes, train, val, size)
        return self._written[shape]
