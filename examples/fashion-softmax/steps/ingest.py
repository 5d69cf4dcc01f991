"""Reads one gzipped IDX file and stores it as a .npy array."""
import gzip
import os
import struct
import sys

import numpy as np

from common import set_output, work_dir

data_dir, name = sys.argv[1], sys.argv[2]
source = os.path.join(data_dir, name + ".gz")
with gzip.open(source, "rb") as f:
    raw = f.read()
zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
if zero != 0 or dtype != 0x08:
    sys.exit(f"{source}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
array = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
if array.size != int(np.prod(dims)):
    sys.exit(f"{source}: header says {dims} but holds {array.size} bytes")
array = array.reshape(dims)
target = os.path.join(work_dir(), name + ".npy")
np.save(target, array)
print(f"{source}: {dims} -> {target}")
set_output("path", target)
set_output("count", dims[0])
