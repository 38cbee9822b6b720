"""Files damaged the way disks, transfers and hands damage them, for the tests of refusals."""

import struct
import zipfile
from pathlib import Path


def flip_a_byte_in_a_tensor(source: Path, target: Path) -> None:
    """A copy of a checkpoint with one byte of a tensor's storage changed (the archive otherwise intact)."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)  # the largest tensor
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_length + extra_length
    data[start + info.file_size // 2] ^= 0x5A
    target.write_bytes(bytes(data))
